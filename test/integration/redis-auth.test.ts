// The fleet's Redis behind a password (`requirepass`), as managed Redis services run it:
// STRATA_REDIS_URL carries it (redis://:password@host:port), the control plane works through it,
// a wrong one is refused with a clear error, and the password never shows in what Strata prints.
import { spawn, type ChildProcess } from "node:child_process";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { RedisCoordinationStore } from "../../src/control/redis-coordination-store.js";
import { UnavailableError } from "../../src/shared/errors.js";
import { CLI, runCommand } from "../helpers/cli.js";
import { freePort } from "../helpers/free-port.js";

describe("Redis with a password", () => {
  let redis: ChildProcess;
  let port: number;
  const url = (password: string) => `redis://:${password}@127.0.0.1:${port}`;

  beforeAll(async () => {
    port = await freePort();
    // The redis-server that scripts/services.sh installed for the shared Redis.
    redis = spawn(
      "redis-server",
      [
        "--port",
        String(port),
        "--bind",
        "127.0.0.1",
        "--requirepass",
        "s3cret-pw",
        "--save",
        "",
        "--appendonly",
        "no",
      ],
      { stdio: "ignore" },
    );
    const deadline = Date.now() + 10_000;
    for (;;) {
      const probe = await RedisCoordinationStore.connect({ url: url("s3cret-pw"), fleetName: "probe" }).catch(
        () => null,
      );
      if (probe) {
        await probe.close();
        break;
      }
      if (Date.now() > deadline) throw new Error("the password-protected redis-server did not start");
      await new Promise((r) => setTimeout(r, 100));
    }
  });
  afterAll(() => {
    redis?.kill("SIGTERM");
  });

  it("works with the password in the URL, refuses a wrong one, and never prints it", async () => {
    const store = await RedisCoordinationStore.connect({ url: url("s3cret-pw"), fleetName: "auth-it" });
    try {
      expect(await store.getLease("users")).toBeNull();
    } finally {
      await store.close();
    }
    const refused = await RedisCoordinationStore.connect({
      url: url("wrong-pw"),
      fleetName: "auth-it",
    }).catch((e: unknown) => e);
    expect(refused).toBeInstanceOf(UnavailableError);
    expect(String((refused as Error).message)).toMatch(/WRONGPASS|NOAUTH|invalid username-password/i);
    expect(String((refused as Error).message)).not.toContain("wrong-pw");

    const env = (password: string) => ({
      ...process.env,
      STRATA_REDIS_URL: url(password),
      STRATA_FLEET_NAME: "auth-it",
    });
    const ok = await runCommand("node", [CLI, "fleet", "status"], { env: env("s3cret-pw") });
    expect(ok.code, ok.stderr).toBe(0);
    const bad = await runCommand("node", [CLI, "fleet", "status"], { env: env("wrong-pw") });
    expect(bad.code).toBe(8);
    expect(bad.stdout + bad.stderr).not.toContain("wrong-pw");
  });
});
