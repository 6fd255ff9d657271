// Smoke test of the local Redis server (scripts/services.sh) through ioredis: a SET/GET round trip
// with expiry, and pub/sub across two connections.
import { randomUUID } from "node:crypto";
import { setTimeout as sleep } from "node:timers/promises";
import { Redis } from "ioredis";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { redisUrl } from "../helpers/services.js";

const prefix = `strata:smoke:${Date.now()}-${randomUUID().slice(0, 8)}:`;
const clients: Redis[] = [];

/** A connection that fails fast (no reconnect loop) when Redis is not there. */
async function connect(): Promise<Redis> {
  const client = new Redis(redisUrl(), {
    lazyConnect: true,
    connectTimeout: 5_000,
    maxRetriesPerRequest: 1,
    retryStrategy: () => null,
  });
  clients.push(client);
  let lastError: Error | undefined;
  client.on("error", (err: Error) => (lastError = err)); // surfaced below, not as "unhandled"
  try {
    await client.connect();
  } catch (err) {
    const cause = lastError ?? err;
    const reason = cause instanceof Error ? cause.message : String(cause);
    throw new Error(`cannot connect to Redis at ${redisUrl()}: ${reason}`, { cause });
  }
  return client;
}

let redis: Redis;

beforeAll(async () => {
  redis = await connect();
});

afterAll(async () => {
  if (redis?.status === "ready") {
    const keys = await redis.keys(`${prefix}*`);
    if (keys.length > 0) await redis.del(...keys);
  }
  await Promise.allSettled(clients.map((c) => c.quit()));
});

describe("local Redis server", () => {
  it("answers PING", async () => {
    expect(await redis.ping()).toBe("PONG");
  });

  it("stores a value with an expiry and forgets it once expired", async () => {
    const key = `${prefix}long`;
    expect(await redis.set(key, "feature-row", "EX", 60)).toBe("OK");
    expect(await redis.get(key)).toBe("feature-row");
    const ttl = await redis.ttl(key);
    expect(ttl).toBeGreaterThan(0);
    expect(ttl).toBeLessThanOrEqual(60);

    const short = `${prefix}short`;
    expect(await redis.set(short, "gone-soon", "PX", 200)).toBe("OK");
    expect(await redis.get(short)).toBe("gone-soon");
    const deadline = Date.now() + 5_000;
    while ((await redis.get(short)) !== null && Date.now() < deadline) await sleep(50);
    expect(await redis.get(short)).toBeNull();
    expect(await redis.pttl(short)).toBe(-2);
  });

  it("delivers a published message to a subscriber on another connection", async () => {
    const channel = `${prefix}events`;
    const subscriber = await connect();
    const payload = JSON.stringify({ table: "users", version: 42 });

    const received = new Promise<{ channel: string; message: string }>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`no message on ${channel} within 10 s`)), 10_000);
      subscriber.on("message", (ch: string, message: string) => {
        clearTimeout(timer);
        resolve({ channel: ch, message });
      });
    });
    expect(await subscriber.subscribe(channel)).toBe(1);

    expect(await redis.publish(channel, payload)).toBe(1); // one subscriber got it
    expect(await received).toEqual({ channel, message: payload });
  });
});
