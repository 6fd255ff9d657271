/** Runs the Kafka ingestor beside the server when STRATA_KAFKA_BROKERS is set. */
import type { CliContext } from "./context.js";
import type { TablesConfig } from "../config/tables-config.js";
import type { Logger } from "../shared/logger.js";
import type { StrataServer } from "../serve/strata-server.js";
import { startIngest } from "../ingest/start-ingest.js";

/**
 * With a server in this process, each publish swaps it at once (no wait for the file watch), and
 * ingest freshness shows in DescribeTable and /metrics. With workers (server null), the workers
 * follow `current` through their watches.
 */
export async function startIngestIfConfigured(
  c: CliContext,
  tables: TablesConfig,
  logger: Logger,
  server: StrataServer | null,
): Promise<{ stop(): Promise<void> } | null> {
  if (c.config.kafkaBrokers.length === 0) return null;
  const ingest = await startIngest({
    config: c.config,
    tables,
    logger,
    onPublished: () => server?.refreshAll(),
  });
  server?.attachIngest((table) => (ingest.tables.includes(table) ? ingest.status(table) : null));
  return ingest;
}
