/** `strata get --server`: the same rows as `get --local`, asked of a running server. */
import { credentials, status, type Metadata } from "@grpc/grpc-js";
import { createStrataClient, type ClientValue } from "../client/index.js";
import type { GetFromServer, PrintedRow } from "./commands/get.js";
import { ServerAnsweredError, UnavailableError } from "../shared/errors.js";
import { readCertificate } from "../shared/tls-files.js";
import { errorCodeOfCall } from "../serve/status-mapping.js";
import { float32ToJson, type JsonValue } from "../format/value-json.js";
import { parseFeatureKind } from "../format/schema.js";

/** Keys a request: a server refuses more than its STRATA_MAX_KEYS_PER_REQUEST (10,000 by default). */
const KEYS_PER_REQUEST = 1000;

export const getFromServer: GetFromServer = async (target, table, keys, features, version, c) => {
  const server = target.address;
  const client = createStrataClient(server, {
    ...(c.config.authToken ? { token: c.config.authToken } : {}),
    ...(target.tlsCa === null
      ? {}
      : { credentials: credentials.createSsl(readCertificate(target.tlsCa, "--tls-ca")) }),
  });
  const failed = (err: Error & { code?: number; details?: string; metadata?: Metadata }): never => {
    const details = err.details ?? err.message;
    // The server's own error code (its trailer) gives the exit code `get --local` would have.
    const code = errorCodeOfCall(err);
    if (code !== null) throw new ServerAnsweredError(code, `Server ${server} answered: ${details}`);
    if (err.code === status.UNAVAILABLE)
      throw new UnavailableError(`Cannot reach server ${server}: ${details}`);
    throw new Error(`Server ${server} answered: ${details}`);
  };
  try {
    // The first request fixes the version (the current one, unless one was asked for); the rest
    // ask for it, so every row comes from one version even if a swap happens meanwhile.
    const [described, first] = await Promise.all([
      client.describeTable(table),
      client.getFeatures({ table, keys: keys.slice(0, KEYS_PER_REQUEST), features, version }),
    ]).catch(failed);
    const answers = [first];
    for (let at = KEYS_PER_REQUEST; at < keys.length; at += KEYS_PER_REQUEST) {
      const batch = keys.slice(at, at + KEYS_PER_REQUEST);
      answers.push(
        await client.getFeatures({ table, keys: batch, features, version: first.version }).catch(failed),
      );
    }
    const types = new Map(
      (described.features as { name: string; type: string }[]).map((f) => [f.name, f.type]),
    );
    const rows = answers.flatMap((res) =>
      res.rows.map((r): PrintedRow => {
        const status = r.status.replace("ROW_STATUS_", "");
        if (r.status !== "ROW_STATUS_FOUND") return { key: r.key, status };
        const out: Record<string, JsonValue> = {};
        res.features.forEach((name, i) => (out[name] = toJson(types.get(name) ?? "", r.values[i] ?? null)));
        return { key: r.key, status, event_time_ms: r.event_time_ms, features: out };
      }),
    );
    return { table, version: first.version, rows };
  } finally {
    client.close();
  }
};

function toJson(type: string, v: ClientValue): JsonValue {
  if (v === null) return null;
  const kind = parseFeatureKind(type);
  if (Buffer.isBuffer(v)) return v.toString("base64");
  if (kind?.type === "float32") return float32ToJson(v as number);
  if (kind?.type === "float32_vector") return (v as number[]).map(float32ToJson);
  if (kind?.type === "int64") {
    const n = Number(v);
    return Number.isSafeInteger(n) ? n : String(v);
  }
  return v as JsonValue;
}
