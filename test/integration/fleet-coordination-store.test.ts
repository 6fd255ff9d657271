// The CoordinationStore behaviour suite against a real Redis (scripts/services.sh), each test on
// a fresh fleet namespace; plus what only the Redis adapter does: fail fast when Redis is away.
import { randomUUID } from "node:crypto";
import { describe, expect, it } from "vitest";
import { RedisCoordinationStore, redactUrl } from "../../src/control/redis-coordination-store.js";
import { UnavailableError } from "../../src/shared/errors.js";
import { coordinationStoreSuite } from "../helpers/coordination-suite.js";
import { redisUrl } from "../helpers/services.js";
import { freePort } from "../helpers/free-port.js";

coordinationStoreSuite("RedisCoordinationStore", async () => {
  const store = await RedisCoordinationStore.connect({
    url: redisUrl(),
    fleetName: `test-${randomUUID().slice(0, 8)}`,
  });
  return { store, close: () => store.close() };
});

describe("RedisCoordinationStore", () => {
  it("connect() fails at once with UnavailableError naming the URL when Redis is not there", async () => {
    const url = `redis://127.0.0.1:${await freePort()}`;
    const started = Date.now();
    const err = await RedisCoordinationStore.connect({ url, fleetName: "x" }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(UnavailableError);
    expect((err as Error).message).toContain(`Cannot reach Redis at ${url}`);
    expect(Date.now() - started).toBeLessThan(3000);
  });

  it("redactUrl() hides the password", () => {
    expect(redactUrl("redis://user:secret@h:1/0")).toBe("redis://user:***@h:1/0");
    expect(redactUrl("redis://:secret@h:1")).toBe("redis://:***@h:1");
    expect(redactUrl("redis://h:1")).toBe("redis://h:1");
  });
});
