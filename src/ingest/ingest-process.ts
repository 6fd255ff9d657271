/**
 * Ingest as a process of its own (`strata ingest`, and the crash tests): starts ingest for the
 * configured tables and runs until SIGTERM or SIGINT, then stops cleanly (publishing what is
 * merged). A SIGKILL at any moment loses nothing: the next start replays from the current
 * version's offsets.
 */
import type { Config } from "../config/config.js";
import type { TablesConfig } from "../config/tables-config.js";
import type { Logger } from "../shared/logger.js";
import { startIngest } from "./start-ingest.js";

export async function runIngestUntilSignalled(options: {
  config: Config;
  tables: TablesConfig;
  logger: Logger;
  only?: readonly string[];
}): Promise<void> {
  const { logger } = options;
  const ingest = await startIngest({
    config: options.config,
    tables: options.tables,
    logger,
    ...(options.only ? { only: options.only } : {}),
    onPublished: (table, version) => logger.info({ table, version }, "published"),
  });
  logger.info({ tables: ingest.tables, pid: process.pid }, "ingest running");
  await new Promise<void>((resolve) => {
    process.once("SIGTERM", resolve);
    process.once("SIGINT", resolve);
  });
  logger.info({}, "stopping");
  await ingest.stop();
}
