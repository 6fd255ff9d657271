/**
 * The Python client (clients/python/strata_client.py) against a real server, through message
 * classes protoc generated from the proto, with Debian's grpcio and protobuf (scripts/services.sh
 * installs them): every call answers what the TypeScript client gets from the same server. This
 * also has Google's protobuf runtime, not protobufjs, decode Strata's hand-written responses.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { execFileSync } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { createStrataClient, type StrataClient } from "../../src/client/index.js";
import { startServe, type ServeProcess } from "../helpers/serve-process.js";
import { runCommand } from "../helpers/cli.js";

// Debian's interpreter, whose packages scripts/services.sh installs (not a pyenv or venv python3).
const PYTHON = "/usr/bin/python3";

describe("the Python client", () => {
  let dir: string;
  let server: ServeProcess;
  let client: StrataClient;
  let address: string;

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), "strata-python-"));
    execFileSync("protoc", ["-I", "proto", `--python_out=${dir}`, "proto/strata/v1/feature_store.proto"]);
    server = await startServe(resolve("sample/segments"), resolve("sample/strata.tables.json"));
    address = server.address;
    client = createStrataClient(address);
  });

  afterAll(async () => {
    client?.close();
    await server?.stop();
    rmSync(dir, { recursive: true, force: true });
  });

  it("answers every call as the TypeScript client does", async () => {
    const r = await runCommand(PYTHON, ["test/fixtures/python/client_check.py", address, dir]);
    expect(r.code, r.stderr).toBe(0);
    const py = JSON.parse(r.stdout);

    const plain = (v: unknown) => (Buffer.isBuffer(v) ? v.toString("base64") : v);
    const ts = await client.getFeatures({ table: "users", keys: ["user:1", "nobody", "user:2"] });
    expect(py.get).toEqual({
      version: Number(ts.version),
      features: ts.features,
      rows: ts.rows.map((row) => ({
        key: row.key,
        status: row.status,
        values:
          row.status === "ROW_STATUS_FOUND"
            ? Object.fromEntries(ts.features.map((f, i) => [f, plain(row.values[i])]))
            : null,
      })),
    });
    expect(py.get.rows[0].values.age).toBe("45");

    const subset = await client.getFeatures({ table: "users", keys: ["user:3"], features: ["emb", "age"] });
    expect(py.subset[0].values).toEqual({ emb: subset.rows[0]!.values[0], age: subset.rows[0]!.values[1] });
    expect(py.stream).toEqual([
      [0, ["user:4"]],
      [1, ["user:5", "user:6"]],
      [2, "NOT_FOUND"],
      [3, ["user:7"]],
    ]);
    expect(py.scan.rows).toBe(1000);
    expect(py.tables).toEqual(["users"]);
    expect(py.describe).toContain("emb:float32[8]");
    expect(py.unknown).toBe("NOT_FOUND");
  });
});
