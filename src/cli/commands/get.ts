/** strata get <table> <key>...: rows from the local data dir (--local) or a server (--server). */
import { readFileSync } from "node:fs";
import type { Command } from "commander";
import type { CliContext } from "../context.js";
import { MappedSegmentCache } from "../../storage/mapped-segment.js";
import { openSnapshot } from "../../storage/version-snapshot.js";
import { featureKinds } from "../../format/schema.js";
import { featureValueToJson, type JsonValue } from "../../format/value-json.js";
import { featureIndexes, parseFeaturesArg, parseVersionArg } from "../context.js";
import { UsageError, errorMessage, systemCallError } from "../../shared/errors.js";
import { MAX_KEY_BYTES } from "../../format/segment-layout.js";
import { RecordCorruptError } from "../../format/errors.js";

export interface PrintedRow {
  key: string;
  status: string;
  event_time_ms?: number;
  features?: Record<string, JsonValue>;
}

export function registerGetCommand(
  program: Command,
  ctx: (cmd: Command) => CliContext,
  fromServer: GetFromServer,
): void {
  program
    .command("get <table> [keys...]")
    .description("print rows by key, from a server (--server host:port) or the local data dir (--local)")
    .option("--local", "read the data dir directly (the default when --server is not given)")
    .option("--server <host:port>", "ask a running Strata server")
    .option(
      "--tls-ca <pem>",
      "with --server: connect over TLS, trusting this CA (or self-signed) certificate",
    )
    .option("--version <n>", "a retained version (default: current)")
    .option("--features <names>", "comma-separated subset of features")
    .option(
      "--keys-from <file>",
      "read keys from a file, one per line (output is then one JSON row per line with --json)",
    )
    .action(
      async (
        table: string,
        argKeys: string[],
        o: {
          local?: boolean;
          server?: string;
          tlsCa?: string;
          version?: string;
          features?: string;
          keysFrom?: string;
        },
        cmd: Command,
      ) => {
        const c = ctx(cmd);
        if (o.local && o.server) throw new UsageError("Give --local or --server, not both");
        const keys = o.keysFrom ? readKeysFile(o.keysFrom) : argKeys;
        if (keys.length === 0) throw new UsageError("Name at least one key (or --keys-from FILE)");
        for (const key of keys) {
          const bytes = Buffer.byteLength(key);
          // What a server refuses (docs/api.md), refused here too, with the same exit code.
          if (bytes === 0 || bytes > MAX_KEY_BYTES)
            throw new UsageError(`A key is 1 to ${MAX_KEY_BYTES} bytes of UTF-8; got one of ${bytes}`);
        }
        const version = parseVersionArg(o.version);
        const features = parseFeaturesArg(o.features);
        const result = o.server
          ? await fromServer(
              { address: o.server, tlsCa: o.tlsCa ?? null },
              table,
              keys,
              features,
              version ?? 0,
              c,
            )
          : getLocal(c, table, keys, features, version);
        if (o.keysFrom && c.json) {
          // One row per line: a million keys would not fit in one JSON document comfortably.
          for (const r of result.rows)
            process.stdout.write(JSON.stringify({ version: result.version, ...r }) + "\n");
        } else {
          c.print(
            result,
            result.rows.map(
              (r) => `${r.key}\t${r.status}${r.features ? "\t" + JSON.stringify(r.features) : ""}`,
            ),
          );
        }
        // The rows are printed; the damaged ones make it a failure (exit 5), said as errors are.
        const damaged = result.rows.filter((r) => r.status === "DATA_LOSS").map((r) => r.key);
        if (damaged.length > 0)
          throw new RecordCorruptError(
            `${damaged.length} row(s) of ${table} v${result.version} failed their CRC check and were not read ` +
              `(${damaged.slice(0, 5).join(", ")}${damaged.length > 5 ? ", ..." : ""}): ` +
              `"strata verify ${table} --version ${result.version}" names the damaged file`,
          );
      },
    );
}

/** The keys of a --keys-from file, one a line; a file that cannot be read is a bad argument. */
function readKeysFile(file: string): string[] {
  let text: string;
  try {
    text = readFileSync(file, "utf8");
  } catch (err) {
    throw new UsageError(
      `--keys-from "${file}" cannot be read: ${errorMessage(systemCallError(err) ?? err)}`,
    );
  }
  return text.split("\n").filter((k) => k.length > 0);
}

export type GetFromServer = (
  server: { address: string; tlsCa: string | null },
  table: string,
  keys: string[],
  features: string[],
  version: number,
  c: CliContext,
) => Promise<{ table: string; version: number; rows: PrintedRow[] }>;

function getLocal(
  c: CliContext,
  table: string,
  keys: string[],
  features: string[],
  version: number | undefined,
) {
  const schema = c.schema(table);
  const store = c.store(table);
  const v = version ?? store.requireCurrentVersion();
  const snapshot = openSnapshot(store, new MappedSegmentCache(), v, { verify: false, schema });
  // The config's features: one the version was written without reads as null.
  const kinds = featureKinds(snapshot);
  const names = snapshot.features.map((f) => f.name);
  const wanted = featureIndexes(table, snapshot.features, features);
  const rows = keys.map((key): PrintedRow => {
    const loc = snapshot.locate(key);
    if (loc.status === "absent") return { key, status: "NOT_FOUND" };
    if (loc.status === "corrupt") return { key, status: "DATA_LOSS" };
    const out: Record<string, JsonValue> = {};
    for (const i of wanted) out[names[i]!] = featureValueToJson(kinds[i]!, snapshot.readAs(loc, i));
    const expired = schema.maxAgeMs > 0 && Date.now() - loc.eventTimeMs > schema.maxAgeMs;
    return {
      key,
      status: expired ? "OUTSIDE_MAX_AGE" : "FOUND",
      event_time_ms: loc.eventTimeMs,
      features: out,
    };
  });
  return { table, version: v, rows };
}
