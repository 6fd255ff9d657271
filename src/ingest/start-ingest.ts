/**
 * The public entry of ingest: one writer per table of the config, each consuming its table's
 * topic into versions. `strata serve` calls it when Kafka is configured; `strata ingest` runs it
 * alone.
 */
import type { Config } from "../config/config.js";
import type { TablesConfig } from "../config/tables-config.js";
import { TableStore } from "../storage/table-store.js";
import { TableNotFoundError } from "../storage/errors.js";
import { ConfigError } from "../shared/errors.js";
import type { DeltaProducer, DeltaSource } from "./delta-source.js";
import { DecodePool } from "./decode-pool.js";
import { TableIngestLoop } from "./ingest-loop.js";
import type { IngestStatus } from "./ingest-status.js";
import { KafkaDeltaProducer, KafkaDeltaSource, kafkaClientOptions } from "./kafka-delta-source.js";
import { silentLogger, type Logger } from "../shared/logger.js";
import { TableIngestor } from "./table-ingestor.js";
import { WriterLock } from "./writer-lock.js";

const CLOSE_TIMEOUT_MS = 3_000;
const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms).unref());

export interface StartIngestOptions {
  readonly config: Config;
  readonly tables: TablesConfig;
  /** pino-compatible; silent by default. */
  readonly logger?: Logger;
  /** Called after each version ingest publishes (deltas and compactions), on the event loop. */
  readonly onPublished?: (table: string, version: number) => void;
  /** Only these tables (default: every table of the config). */
  readonly only?: readonly string[];
  /** Replace the Kafka client (tests): both or neither. */
  readonly source?: DeltaSource;
  readonly producer?: DeltaProducer;
  /** Timer period of each table's loop, ms. @default 50 */
  readonly tickMs?: number;
  /** Fleet fencing, handed to each table's ingestor (TableIngestorOptions; set by src/control). */
  readonly writerEpoch?: number;
  readonly beforePublish?: () => void;
}

export interface Ingest {
  /** The ingested tables, in config order. */
  readonly tables: readonly string[];
  /** Freshness and progress of one table; throws TableNotFoundError for a table not ingested. */
  status(table: string): IngestStatus;
  /** Stops every table (publishing what is merged), releases the writer locks, closes Kafka clients. */
  stop(): Promise<void>;
}

/**
 * Takes each table's writer lock, opens its current version and starts consuming. Throws
 * (having released what it took) when Kafka is not configured, two tables share a topic, a
 * table's writer lock is held by a live process (TableLockedError), or a table's current version
 * cannot be read or has another schema than the config (ingest cannot merge onto it).
 */
export async function startIngest(options: StartIngestOptions): Promise<Ingest> {
  const { config } = options;
  const logger = (options.logger ?? silentLogger).child({ component: "ingest" });
  if (!options.source && config.kafkaBrokers.length === 0) {
    throw new ConfigError("Cannot start ingest: no Kafka brokers are configured (set STRATA_KAFKA_BROKERS)");
  }
  const schemas = options.only
    ? options.only.map((name) => {
        const s = options.tables.tables.find((t) => t.name === name);
        if (!s) throw new TableNotFoundError(name);
        return s;
      })
    : options.tables.tables;
  const byTopic = new Map<string, string>();
  for (const s of schemas) {
    const other = byTopic.get(s.topic);
    if (other) {
      throw new ConfigError(
        `Cannot ingest tables "${other}" and "${s.name}" from one topic "${s.topic}": give each table its own topic`,
      );
    }
    byTopic.set(s.topic, s.name);
  }

  const source = options.source ?? new KafkaDeltaSource(kafkaClientOptions(config, "strata-ingest", logger));
  const producer =
    options.producer ?? new KafkaDeltaProducer(kafkaClientOptions(config, "strata-ingest-dlq", logger));
  const limits = { maxMessageBytes: config.ingestMaxMessageBytes, maxValueBytes: config.ingestMaxValueBytes };
  const decodePool = new DecodePool(schemas, limits, logger, config.ingestDecodeWorker);
  const locks: WriterLock[] = [];
  const loops = new Map<string, TableIngestLoop>();
  try {
    for (const schema of schemas) {
      const store = new TableStore(config.dataDir, schema.name);
      store.ensureLayout();
      locks.push(WriterLock.acquire(store.dir, schema.name));
      // The writer lock is ours: what a killed writer left behind (temp segments) can go.
      store.cleanLeftovers();
      const deadLetterTopic = schema.topic + config.ingestDeadLetterSuffix;
      const groupId = config.ingestGroupPrefix + schema.name;
      const ingestor = new TableIngestor(
        store,
        schema,
        {
          publishIntervalMs: config.ingestPublishIntervalMs,
          publishMaxRows: config.ingestPublishMaxRows,
          compactMaxDeltas: config.ingestCompactMaxDeltas,
          compactDeltaRatio: config.ingestCompactDeltaRatio,
          keepVersions: config.keepVersions,
          limits,
          deadLetterTopic,
          groupId,
          ...(options.writerEpoch === undefined ? {} : { writerEpoch: options.writerEpoch }),
          ...(options.beforePublish ? { beforePublish: options.beforePublish } : {}),
        },
        logger,
      );
      ingestor.open();
      const loopOptions = {
        groupId,
        deadLetterTopic,
        decodePool,
        ...(options.tickMs === undefined ? {} : { tickMs: options.tickMs }),
        ...(options.onPublished ? { onPublished: options.onPublished } : {}),
      };
      loops.set(schema.name, new TableIngestLoop(ingestor, source, producer, loopOptions, logger));
    }
  } catch (err) {
    for (const lock of locks) lock.release();
    await decodePool.close();
    if (!options.source) await source.close();
    if (!options.producer) await producer.close();
    throw err;
  }
  for (const loop of loops.values()) loop.start();
  logger.info({ tables: [...loops.keys()], brokers: config.kafkaBrokers }, "Ingest started");

  let stopped: Promise<void> | null = null;
  return {
    tables: [...loops.keys()],
    status(table: string): IngestStatus {
      const loop = loops.get(table);
      if (!loop) throw new TableNotFoundError(table);
      return loop.status();
    },
    stop(): Promise<void> {
      stopped ??= (async () => {
        const started = Date.now();
        await Promise.allSettled([...loops.values()].map((l) => l.stop()));
        for (const lock of locks) lock.release();
        await decodePool.close();
        const closing = Promise.allSettled([
          options.source ? null : source.close(),
          options.producer ? null : producer.close(),
        ]);
        // A client still waiting on the broker (a group join, a retry) must not hold the stop up.
        const closed = await Promise.race([
          closing.then(() => true),
          sleep(CLOSE_TIMEOUT_MS).then(() => false),
        ]);
        if (!closed)
          logger.warn({ ms: CLOSE_TIMEOUT_MS }, "Kafka clients did not close in time: leaving them");
        logger.info({ ms: Date.now() - started }, "Ingest stopped");
      })();
      return stopped;
    },
  };
}
