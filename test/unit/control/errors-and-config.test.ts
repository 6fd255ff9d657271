import { describe, expect, it } from "vitest";
import { status } from "@grpc/grpc-js";
import { FleetIncompleteError, LeaseLostError } from "../../../src/control/errors.js";
import { WriterFencedError } from "../../../src/storage/errors.js";
import { ConfigError } from "../../../src/shared/errors.js";
import { exitCodeOf } from "../../../src/cli/exit-codes.js";
import { toGrpcStatus } from "../../../src/serve/status-mapping.js";
import { loadConfig } from "../../../src/config/config.js";
import { resolveRole } from "../../../src/control/join-fleet.js";

describe("fleet errors", () => {
  it.each([
    {
      err: new WriterFencedError("users", 2, 3),
      name: "WriterFencedError",
      code: "STRATA_WRITER_FENCED",
      grpc: status.FAILED_PRECONDITION,
      exit: 6,
      message:
        'Cannot publish on table "users": writer epoch 2 is below epoch 3, already published (this writer lost its lease)',
    },
    {
      err: new LeaseLostError("users", 4, "taken by another node or expired in Redis"),
      name: "LeaseLostError",
      code: "STRATA_WRITER_FENCED",
      grpc: status.FAILED_PRECONDITION,
      exit: 6,
      message:
        'Cannot publish on table "users": this node does not hold the writer lease (epoch 4): taken by another node or expired in Redis',
    },
    {
      err: new FleetIncompleteError(
        "users",
        2,
        [
          { node: "r1", serving: 3, error: "fetch failed" },
          { node: "r2", serving: null, error: null },
        ],
        500,
      ),
      name: "FleetIncompleteError",
      code: "STRATA_FLEET_INCOMPLETE",
      grpc: status.DEADLINE_EXCEEDED,
      exit: 9,
      message:
        'Fleet did not converge on users v2 within 500 ms: node "r1" serves v3 (fetch failed), node "r2" serves nothing (the desired state is saved: they apply it when they can)',
    },
  ])("$name: code, status, exit code and message", ({ err, name, code, grpc, exit, message }) => {
    expect(err.name).toBe(name);
    expect(err.code).toBe(code);
    expect(err.retriable).toBe(false);
    expect(toGrpcStatus(err).code).toBe(grpc);
    expect(exitCodeOf(err)).toBe(exit);
    expect(err.message).toBe(message);
  });
});

describe("fleet configuration", () => {
  const env = (e: Record<string, string>) => loadConfig({}, e);

  it("has defaults, and reads STRATA_NODE_ID, STRATA_FLEET_*, STRATA_ADVERTISE_ADDRESS, lease and heartbeat timing", () => {
    expect(env({})).toMatchObject({
      nodeId: null,
      fleetName: "default",
      fleetRole: "auto",
      advertiseAddress: null,
      leaseTtlMs: 10_000,
      heartbeatIntervalMs: 1000,
      nodeTtlMs: 5000,
    });
    expect(
      env({
        STRATA_NODE_ID: "host-a:50051",
        STRATA_FLEET_NAME: "prod.eu",
        STRATA_FLEET_ROLE: "replica",
        STRATA_ADVERTISE_ADDRESS: "10.0.0.7:50051",
        STRATA_LEASE_TTL_MS: "3000",
      }),
    ).toMatchObject({
      nodeId: "host-a:50051",
      fleetName: "prod.eu",
      fleetRole: "replica",
      advertiseAddress: "10.0.0.7:50051",
      leaseTtlMs: 3000,
    });
  });

  it.each([
    [{ STRATA_FLEET_ROLE: "leader" }, /STRATA_FLEET_ROLE "leader": expected auto, writer or replica/],
    [{ STRATA_FLEET_NAME: "a b" }, /STRATA_FLEET_NAME "a b"/],
    [{ STRATA_NODE_ID: "x/y" }, /STRATA_NODE_ID "x\/y"/],
    [{ STRATA_ADVERTISE_ADDRESS: "nohost" }, /STRATA_ADVERTISE_ADDRESS "nohost": expected host:port/],
    [{ STRATA_LEASE_TTL_MS: "100" }, /STRATA_LEASE_TTL_MS 100: expected at least 300/],
    [
      { STRATA_NODE_TTL_MS: "1500" },
      /STRATA_NODE_TTL_MS 1500: expected at least twice STRATA_HEARTBEAT_INTERVAL_MS \(1000\)/,
    ],
  ])("refuses %o", (e, message) => {
    expect(() => env(e)).toThrow(ConfigError);
    expect(() => env(e)).toThrow(message);
  });

  it("resolveRole(): auto is writer with Kafka, else replica", () => {
    expect(resolveRole("auto", true)).toBe("writer");
    expect(resolveRole("auto", false)).toBe("replica");
    expect(resolveRole("writer", false)).toBe("writer");
    expect(resolveRole("replica", true)).toBe("replica");
  });
});
