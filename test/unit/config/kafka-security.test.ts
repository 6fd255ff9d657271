import { describe, expect, it } from "vitest";
import { resolve } from "node:path";
import { loadConfig } from "../../../src/config/config.js";
import { ConfigError } from "../../../src/shared/errors.js";

describe("Kafka security settings", () => {
  const load = (env: Record<string, string>) => loadConfig({}, env).kafkaSecurity;

  it("is plaintext and anonymous by default", () => {
    expect(load({})).toEqual({ sasl: null, tls: null });
  });

  it("reads SASL (all three settings) and TLS (on, or a CA file)", () => {
    const sasl = { STRATA_KAFKA_SASL_USERNAME: "u", STRATA_KAFKA_SASL_PASSWORD: "p" };
    expect(load({ ...sasl, STRATA_KAFKA_SASL_MECHANISM: "SCRAM-SHA-512" }).sasl).toEqual({
      mechanism: "scram-sha-512",
      username: "u",
      password: "p",
    });
    expect(load({ STRATA_KAFKA_TLS: "true" }).tls).toEqual({ ca: null });
    expect(load({ STRATA_KAFKA_TLS: "off" }).tls).toBeNull();
    const ca = load({ STRATA_KAFKA_TLS: resolve("test/fixtures/tls/cert.pem") }).tls?.ca;
    expect(ca?.toString()).toMatch(/^-----BEGIN CERTIFICATE-----/);
  });

  it("refuses a partial or unknown SASL setting and a CA file that is not PEM, naming it", () => {
    const partial: Record<string, string>[] = [
      { STRATA_KAFKA_SASL_MECHANISM: "plain" },
      { STRATA_KAFKA_SASL_USERNAME: "u", STRATA_KAFKA_SASL_PASSWORD: "p" },
      {
        STRATA_KAFKA_SASL_MECHANISM: "gssapi",
        STRATA_KAFKA_SASL_USERNAME: "u",
        STRATA_KAFKA_SASL_PASSWORD: "p",
      },
    ];
    for (const env of partial) expect(() => load(env), JSON.stringify(env)).toThrow(ConfigError);
    expect(() => load({ STRATA_KAFKA_TLS: "/nonexistent/ca.pem" })).toThrow(
      /STRATA_KAFKA_TLS "\/nonexistent\/ca.pem"/,
    );
  });
});
