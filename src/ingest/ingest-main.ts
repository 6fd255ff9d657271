#!/usr/bin/env node
/**
 * `node dist/ingest/ingest-main.js [--log-level debug]`: ingest alone, configured like every
 * Strata process (STRATA_DATA_DIR, STRATA_CONFIG, STRATA_KAFKA_BROKERS, STRATA_INGEST_*), until
 * SIGTERM. The same as the hidden `strata ingest`, with fewer imports: the crash tests run it.
 */
import { pino } from "pino";
import { loadConfig } from "../config/config.js";
import { loadTablesConfig } from "../config/tables-config.js";
import type { Logger } from "../shared/logger.js";
import { runIngestUntilSignalled } from "./ingest-process.js";

const levelAt = process.argv.indexOf("--log-level");
const level = levelAt >= 0 ? (process.argv[levelAt + 1] ?? "info") : "info";
const config = loadConfig();
const logger = pino({ name: "strata-ingest", level }, pino.destination(2)) as unknown as Logger;
await runIngestUntilSignalled({ config, tables: loadTablesConfig(config.tablesConfigPath), logger });
