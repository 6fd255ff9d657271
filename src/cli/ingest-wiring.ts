/** Starts the Kafka ingestor beside the server when STRATA_KAFKA_BROKERS is set. */
import type { CliContext } from "./context.js";
import type { Logger } from "../shared/logger.js";
import type { StrataServer } from "../serve/strata-server.js";
import { ConfigError } from "../shared/errors.js";

export async function startIngestIfConfigured(
  c: CliContext,
  _logger: Logger,
  _server: StrataServer | null,
): Promise<{ stop(): Promise<void> } | null> {
  if (c.config.kafkaBrokers.length === 0) return null;
  throw new ConfigError("Kafka ingest is not available in this build: unset STRATA_KAFKA_BROKERS");
}
