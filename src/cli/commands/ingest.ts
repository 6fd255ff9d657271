/**
 * strata ingest (hidden): runs only the Kafka ingestor of the data dir, without serving, until
 * SIGTERM or SIGINT. `strata serve` runs the same ingestor beside the server when
 * STRATA_KAFKA_BROKERS is set; this command exists for operations and crash tests.
 */
import type { Command } from "commander";
import { pino } from "pino";
import type { CliContext } from "../context.js";
import type { Logger } from "../../shared/logger.js";
import { runIngestUntilSignalled } from "../../ingest/ingest-process.js";

export function registerIngestCommand(program: Command, ctx: (cmd: Command) => CliContext): void {
  program
    .command("ingest", { hidden: true })
    .description("run only the Kafka ingestor until SIGTERM")
    .option("--kafka-brokers <list>", "host:port,... (env STRATA_KAFKA_BROKERS)")
    .option("--tables <names>", "comma-separated tables (default: all)")
    .option("--log-level <level>", "pino level", "info")
    .action(async (o: { tables?: string; logLevel: string }, cmd: Command) => {
      const c = ctx(cmd);
      const logger = pino(
        { name: "strata-ingest", level: o.logLevel },
        pino.destination(2),
      ) as unknown as Logger;
      await runIngestUntilSignalled({
        config: c.config,
        tables: c.tables,
        logger,
        ...(o.tables ? { only: o.tables.split(",").map((t) => t.trim()) } : {}),
      });
    });
}
