// Addresses of the Kafka broker and Redis server that test/integration/global-setup.ts brought up
// (with scripts/services.sh). Tests call these instead of hard-coding ports.
import { inject } from "vitest";

function provided(
  key: "strataKafkaBrokers" | "strataKafkaSaslBrokers" | "strataRedisUrl",
  envName: string,
): string {
  // inject() returns undefined when no globalSetup provided the key (e.g. the unit project).
  const value = inject(key) ?? process.env[envName];
  if (value === undefined || value.trim() === "") {
    throw new Error(
      `${envName} is not set: this test needs the local services. Run it in the "integration" vitest ` +
        `project (npx vitest run --project integration), whose global setup runs 'scripts/services.sh up', ` +
        `or set ${envName} yourself.`,
    );
  }
  return value.trim();
}

/** Kafka bootstrap servers, e.g. ["127.0.0.1:19092"]. */
export function kafkaBrokers(): string[] {
  return provided("strataKafkaBrokers", "STRATA_KAFKA_BROKERS")
    .split(",")
    .map((b) => b.trim())
    .filter((b) => b !== "");
}

/** The broker's SASL/PLAIN listener (user strata, password strata-test-secret), e.g. ["127.0.0.1:19094"]. */
export function kafkaSaslBrokers(): string[] {
  return provided("strataKafkaSaslBrokers", "STRATA_KAFKA_SASL_BROKERS")
    .split(",")
    .map((b) => b.trim())
    .filter((b) => b !== "");
}

/** Redis URL, e.g. "redis://127.0.0.1:16379". */
export function redisUrl(): string {
  return provided("strataRedisUrl", "STRATA_REDIS_URL");
}
