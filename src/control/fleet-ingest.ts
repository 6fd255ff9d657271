/**
 * Ingest under the writer lease: how a fleet node starts the Kafka ingestor of one table when it
 * takes the table's lease, and stops it when it loses it (FleetTable calls it). One ingestor per
 * table (startIngest with `only`), so tables fail over one by one.
 */
import { errorMessage } from "../shared/errors.js";
import type { Config } from "../config/config.js";
import type { TablesConfig } from "../config/tables-config.js";
import type { StrataServer } from "../serve/strata-server.js";
import { startIngest, type Ingest } from "../ingest/start-ingest.js";
import type { Logger } from "../shared/logger.js";
import type { StartTableIngest } from "./fleet-table.js";

/** The fleet's way to start a table's ingest; null when Kafka is not configured (an import-only writer). */
export function ingestUnderLease(o: {
  config: Config;
  tables: TablesConfig;
  logger: Logger;
  server: StrataServer | null;
}): StartTableIngest | null {
  if (o.config.kafkaBrokers.length === 0) return null;
  const running = new Map<string, Ingest>();
  // Freshness in DescribeTable and /metrics, as `strata serve` shows it on one host.
  o.server?.attachIngest((table) => running.get(table)?.status(table) ?? null);
  return async (table, fence) => {
    const ingest = await startIngest({
      config: o.config,
      tables: o.tables,
      logger: o.logger,
      only: [table],
      writerEpoch: fence.writerEpoch,
      beforePublish: fence.beforePublish,
      onPublished: () => {
        // Serve it here first, then announce it to the fleet.
        void (o.server?.refreshAll() ?? Promise.resolve())
          .then(() => fence.onPublished())
          .catch((err: unknown) =>
            o.logger.error({ table, err: errorMessage(err) }, "announcing a publish failed"),
          );
      },
    });
    running.set(table, ingest);
    return {
      stop: async () => {
        running.delete(table);
        await ingest.stop();
      },
      status: () => {
        const s = ingest.status(table);
        return { kafkaLag: s.kafkaLag, lastPublishMs: s.lastPublishMs };
      },
    };
  };
}
