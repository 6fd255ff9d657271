// A fleet that serves TLS (`serve --tls-cert --tls-key`): a replica fetches the writer's segments
// over TLS too, trusting the fleet's certificate, and serves the version byte for byte.
import { readFileSync } from "node:fs";
import { resolve } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { credentials } from "@grpc/grpc-js";
import { FleetHarness, servedVersion, until, versionHashes } from "../helpers/fleet-processes.js";
import { redisUrl } from "../helpers/services.js";

describe("fleet replication over TLS", () => {
  const [cert, key] = ["cert.pem", "key.pem"].map((f) => resolve("test/fixtures/tls", f)) as [string, string];
  let h: FleetHarness;
  afterAll(() => h?.close());

  it("a replica fetches the writer's segments over TLS and serves the version", async () => {
    h = new FleetHarness(redisUrl());
    const tls = {
      args: ["--tls-cert", cert, "--tls-key", key, "--tls-ca", cert],
      credentials: credentials.createSsl(readFileSync(cert)),
    };
    const [writer, replica] = await Promise.all([
      h.startNode("writer", "writer", {}, "writer", tls),
      h.startNode("replica", "replica", {}, "replica", tls),
    ]);
    const coord = await h.connect();
    await until("the writer lease", async () => (await coord.getLease("users"))?.node === "writer");
    await coord.close();

    const version = await h.importRows(writer, [
      ["u1", 10, "Oslo"],
      ["u2", 20, "Rome"],
    ]);
    await until(`the replica on v${version}`, async () => (await servedVersion(replica)) === version, 10_000);
    expect(versionHashes(replica, version)).toEqual(versionHashes(writer, version));
    const res = await replica.client.getFeatures({ table: "users", keys: ["u2"] });
    expect(res.rows[0]!.values).toEqual(["20", "Rome"]);
    expect(replica.log()).not.toMatch(/fetch.*failed/i);
  }, 60_000);
});
