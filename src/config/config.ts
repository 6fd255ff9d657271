/**
 * Runtime configuration: the one place that reads process.env. Flags win over environment
 * variables, which win over defaults. Parsed once, checked, frozen.
 */
import { isAbsolute, resolve } from "node:path";
import { ConfigError, UsageError } from "../shared/errors.js";
import {
  DEFAULT_CONFIG_PATH,
  DEFAULT_DATA_DIR,
  DEFAULT_FLEET_NAME,
  DEFAULT_HEARTBEAT_INTERVAL_MS,
  DEFAULT_GRPC_PORT,
  DEFAULT_HOST,
  DEFAULT_INGEST_COMPACT_DELTA_RATIO,
  DEFAULT_INGEST_COMPACT_MAX_DELTAS,
  DEFAULT_INGEST_DEAD_LETTER_SUFFIX,
  DEFAULT_INGEST_GROUP_PREFIX,
  DEFAULT_INGEST_MAX_MESSAGE_BYTES,
  DEFAULT_INGEST_MAX_VALUE_BYTES,
  DEFAULT_INGEST_PUBLISH_INTERVAL_MS,
  DEFAULT_INGEST_PUBLISH_MAX_ROWS,
  DEFAULT_KEEP_VERSIONS,
  DEFAULT_LEASE_TTL_MS,
  DEFAULT_MAX_KEYS_PER_REQUEST,
  DEFAULT_METRICS_PORT,
  DEFAULT_NODE_TTL_MS,
} from "./defaults.js";
import { readCertificate } from "../shared/tls-files.js";

/** What a fleet node does (docs/fleet.md): `auto` is writer when Kafka is configured, else replica. */
export type FleetRole = "auto" | "writer" | "replica";

export const KAFKA_SASL_MECHANISMS = ["plain", "scram-sha-256", "scram-sha-512"] as const;

export interface KafkaSecurity {
  /** SASL, or null for none. (env STRATA_KAFKA_SASL_MECHANISM, _USERNAME, _PASSWORD) */
  readonly sasl: {
    readonly mechanism: (typeof KAFKA_SASL_MECHANISMS)[number];
    readonly username: string;
    readonly password: string;
  } | null;
  /**
   * TLS to the brokers: null = plaintext; `ca` null = the system's CAs, else the PEM of the CAs
   * to trust. (env STRATA_KAFKA_TLS: "true", or the path of a CA file)
   */
  readonly tls: { readonly ca: Buffer | null } | null;
}

export interface Config {
  /** Root of the table directories. @default "segments" (env STRATA_DATA_DIR) */
  readonly dataDir: string;
  /** Path of strata.tables.json. @default "strata.tables.json" (env STRATA_CONFIG) */
  readonly tablesConfigPath: string;
  /** Kafka brokers, host:port; empty = no ingest. (env STRATA_KAFKA_BROKERS, comma separated) */
  readonly kafkaBrokers: readonly string[];
  /** How Strata authenticates to and encrypts for Kafka (env STRATA_KAFKA_SASL_*, STRATA_KAFKA_TLS). */
  readonly kafkaSecurity: KafkaSecurity;
  /** Redis URL of the fleet control plane; null = single host. (env STRATA_REDIS_URL) */
  readonly redisUrl: string | null;
  /** Fleet: this node's id in the registry; null = `<hostname>:<port>`. (env STRATA_NODE_ID) */
  readonly nodeId: string | null;
  /** Fleet: the fleet's name, prefixing its Redis keys. @default "default" (env STRATA_FLEET_NAME) */
  readonly fleetName: string;
  /** Fleet: writer (contends for each table's writer lease), replica, or auto. @default "auto" (env STRATA_FLEET_ROLE) */
  readonly fleetRole: FleetRole;
  /** Fleet: the host:port other nodes fetch segments from; null = the listen host and bound port. (env STRATA_ADVERTISE_ADDRESS) */
  readonly advertiseAddress: string | null;
  /** Fleet: writer lease time-to-live, ms. @default 10000 (env STRATA_LEASE_TTL_MS) */
  readonly leaseTtlMs: number;
  /** Fleet: heartbeat period, ms. @default 1000 (env STRATA_HEARTBEAT_INTERVAL_MS) */
  readonly heartbeatIntervalMs: number;
  /** Fleet: a node without a heartbeat for this long leaves the registry, ms. @default 5000 (env STRATA_NODE_TTL_MS) */
  readonly nodeTtlMs: number;
  /** gRPC listen address. @default "127.0.0.1" (env STRATA_HOST) */
  readonly host: string;
  /** gRPC port. @default 50051 (env STRATA_PORT) */
  readonly port: number;
  /** Prometheus /metrics port; 0 = any free port; null = off. @default 9464 (env STRATA_METRICS_PORT, "off") */
  readonly metricsPort: number | null;
  /** Versions kept by retention after each publish of the ingestor. @default 10 (env STRATA_KEEP_VERSIONS) */
  readonly keepVersions: number;
  /** Most keys one GetFeatures request may ask for. @default 10000 */
  readonly maxKeysPerRequest: number;
  /**
   * Serve GetFeatures and StreamFeatures on HTTP/2 directly, beside grpc-js (decision 32); false
   * leaves them to grpc-js. @default true (env STRATA_GRPC_DIRECT=0 turns it off)
   */
  readonly grpcDirect: boolean;
  /** Bearer token required in `authorization` metadata; null = none. (env STRATA_AUTH_TOKEN) */
  readonly authToken: string | null;
  /** Ingest publishes a delta version once its oldest pending change is this old. @default 200 (env STRATA_INGEST_PUBLISH_INTERVAL_MS) */
  readonly ingestPublishIntervalMs: number;
  /** ...or as soon as this many distinct keys are pending. @default 50000 (env STRATA_INGEST_PUBLISH_MAX_ROWS) */
  readonly ingestPublishMaxRows: number;
  /** Ingest compacts when the current version has this many delta segments... @default 16 (env STRATA_INGEST_COMPACT_MAX_DELTAS) */
  readonly ingestCompactMaxDeltas: number;
  /** ...or when its delta records pass this fraction of its base records. @default 1 (env STRATA_INGEST_COMPACT_DELTA_RATIO) */
  readonly ingestCompactDeltaRatio: number;
  /** A table's dead-letter topic is its topic plus this suffix. @default ".dlq" (env STRATA_INGEST_DEAD_LETTER_SUFFIX) */
  readonly ingestDeadLetterSuffix: string;
  /** A table's consumer group, where ingest commits its published offsets for lag tools, is this prefix plus the table name. @default "strata-ingest." (env STRATA_INGEST_GROUP_PREFIX) */
  readonly ingestGroupPrefix: string;
  /** Largest delta message value accepted; larger ones are dead-lettered. @default 1048576 (env STRATA_INGEST_MAX_MESSAGE_BYTES) */
  readonly ingestMaxMessageBytes: number;
  /** Largest string or bytes feature value accepted in a delta. @default 262144 (env STRATA_INGEST_MAX_VALUE_BYTES) */
  readonly ingestMaxValueBytes: number;
  /** Decode delta batches in a worker thread beside the event loop. @default true (env STRATA_INGEST_DECODE_WORKER=0 turns it off) */
  readonly ingestDecodeWorker: boolean;
}

export type ConfigFlags = Partial<{
  dataDir: string;
  config: string;
  host: string;
  port: string | number;
  metricsPort: string | number;
  kafkaBrokers: string;
  redisUrl: string;
}>;

export function loadConfig(flags: ConfigFlags = {}, env: NodeJS.ProcessEnv = process.env): Config {
  const pick = (flag: string | number | undefined, envName: string): string | undefined => {
    if (flag !== undefined) return String(flag);
    const v = env[envName];
    return v === undefined || v === "" ? undefined : v;
  };
  const brokers = pick(flags.kafkaBrokers, "STRATA_KAFKA_BROKERS");
  // A flag's bad value is the command line's mistake (exit 2); the environment's is the config's (3).
  const port = (flag: string | number | undefined, flagName: string, envName: string, fallback: number) => {
    const value = pick(flag, envName);
    if (value === undefined) return fallback;
    const n = Number(value);
    if (Number.isInteger(n) && n >= 0 && n <= 65535) return n;
    const why = `"${value}": expected 0 to 65535`;
    throw flag === undefined
      ? new ConfigError(`Invalid ${envName} ${why}`)
      : new UsageError(`Invalid ${flagName} ${why}`);
  };
  const positiveEnv = (name: string, fallback: number): number =>
    positive(pick(undefined, name), fallback, name);
  const config: Config = {
    dataDir: absolute(pick(flags.dataDir, "STRATA_DATA_DIR") ?? DEFAULT_DATA_DIR),
    tablesConfigPath: absolute(pick(flags.config, "STRATA_CONFIG") ?? DEFAULT_CONFIG_PATH),
    kafkaBrokers: brokers
      ? brokers
          .split(",")
          .map((b) => b.trim())
          .filter(Boolean)
      : [],
    kafkaSecurity: kafkaSecurity(pick),
    redisUrl: pick(flags.redisUrl, "STRATA_REDIS_URL") ?? null,
    nodeId: pick(undefined, "STRATA_NODE_ID") ?? null,
    fleetName: pick(undefined, "STRATA_FLEET_NAME") ?? DEFAULT_FLEET_NAME,
    fleetRole: (pick(undefined, "STRATA_FLEET_ROLE") ?? "auto") as FleetRole,
    advertiseAddress: pick(undefined, "STRATA_ADVERTISE_ADDRESS") ?? null,
    leaseTtlMs: positiveEnv("STRATA_LEASE_TTL_MS", DEFAULT_LEASE_TTL_MS),
    heartbeatIntervalMs: positiveEnv("STRATA_HEARTBEAT_INTERVAL_MS", DEFAULT_HEARTBEAT_INTERVAL_MS),
    nodeTtlMs: positiveEnv("STRATA_NODE_TTL_MS", DEFAULT_NODE_TTL_MS),
    host: pick(flags.host, "STRATA_HOST") ?? DEFAULT_HOST,
    port: port(flags.port, "--port", "STRATA_PORT", DEFAULT_GRPC_PORT),
    metricsPort:
      pick(flags.metricsPort, "STRATA_METRICS_PORT") === "off"
        ? null
        : port(flags.metricsPort, "--metrics-port", "STRATA_METRICS_PORT", DEFAULT_METRICS_PORT),
    keepVersions: positive(
      pick(undefined, "STRATA_KEEP_VERSIONS"),
      DEFAULT_KEEP_VERSIONS,
      "STRATA_KEEP_VERSIONS",
    ),
    maxKeysPerRequest: positive(
      pick(undefined, "STRATA_MAX_KEYS_PER_REQUEST"),
      DEFAULT_MAX_KEYS_PER_REQUEST,
      "STRATA_MAX_KEYS_PER_REQUEST",
    ),
    grpcDirect: flag(pick(undefined, "STRATA_GRPC_DIRECT"), true, "STRATA_GRPC_DIRECT"),
    authToken: pick(undefined, "STRATA_AUTH_TOKEN") ?? null,
    ingestPublishIntervalMs: positiveEnv(
      "STRATA_INGEST_PUBLISH_INTERVAL_MS",
      DEFAULT_INGEST_PUBLISH_INTERVAL_MS,
    ),
    ingestPublishMaxRows: positiveEnv("STRATA_INGEST_PUBLISH_MAX_ROWS", DEFAULT_INGEST_PUBLISH_MAX_ROWS),
    ingestCompactMaxDeltas: positiveEnv(
      "STRATA_INGEST_COMPACT_MAX_DELTAS",
      DEFAULT_INGEST_COMPACT_MAX_DELTAS,
    ),
    ingestCompactDeltaRatio: positiveFraction(
      pick(undefined, "STRATA_INGEST_COMPACT_DELTA_RATIO"),
      DEFAULT_INGEST_COMPACT_DELTA_RATIO,
      "STRATA_INGEST_COMPACT_DELTA_RATIO",
    ),
    ingestDeadLetterSuffix:
      pick(undefined, "STRATA_INGEST_DEAD_LETTER_SUFFIX") ?? DEFAULT_INGEST_DEAD_LETTER_SUFFIX,
    ingestGroupPrefix: pick(undefined, "STRATA_INGEST_GROUP_PREFIX") ?? DEFAULT_INGEST_GROUP_PREFIX,
    ingestMaxMessageBytes: positiveEnv("STRATA_INGEST_MAX_MESSAGE_BYTES", DEFAULT_INGEST_MAX_MESSAGE_BYTES),
    ingestMaxValueBytes: positiveEnv("STRATA_INGEST_MAX_VALUE_BYTES", DEFAULT_INGEST_MAX_VALUE_BYTES),
    ingestDecodeWorker: flag(
      pick(undefined, "STRATA_INGEST_DECODE_WORKER"),
      true,
      "STRATA_INGEST_DECODE_WORKER",
    ),
  };
  if (!/^[A-Za-z0-9._-]{1,40}$/.test(config.ingestDeadLetterSuffix)) {
    throw new ConfigError(
      `Invalid STRATA_INGEST_DEAD_LETTER_SUFFIX "${config.ingestDeadLetterSuffix}": expected 1 to 40 of A-Z a-z 0-9 . _ - (it is appended to a topic name)`,
    );
  }
  if (!/^[A-Za-z0-9._-]{0,200}$/.test(config.ingestGroupPrefix)) {
    throw new ConfigError(
      `Invalid STRATA_INGEST_GROUP_PREFIX "${config.ingestGroupPrefix}": expected A-Z a-z 0-9 . _ - only`,
    );
  }
  for (const b of config.kafkaBrokers) {
    if (!/^[^:\s]+:\d{1,5}$/.test(b))
      throw new ConfigError(`Invalid STRATA_KAFKA_BROKERS entry "${b}": expected host:port`);
  }
  if (!["auto", "writer", "replica"].includes(config.fleetRole)) {
    throw new ConfigError(
      `Invalid STRATA_FLEET_ROLE "${config.fleetRole}": expected auto, writer or replica`,
    );
  }
  if (!/^[A-Za-z0-9._-]{1,64}$/.test(config.fleetName)) {
    throw new ConfigError(
      `Invalid STRATA_FLEET_NAME "${config.fleetName}": expected 1 to 64 of A-Z a-z 0-9 . _ - (it prefixes Redis keys)`,
    );
  }
  if (config.nodeId !== null && !/^[A-Za-z0-9._:@-]{1,128}$/.test(config.nodeId)) {
    throw new ConfigError(
      `Invalid STRATA_NODE_ID "${config.nodeId}": expected 1 to 128 of A-Z a-z 0-9 . _ : @ -`,
    );
  }
  if (config.advertiseAddress !== null && !/^[^:\s]+:\d{1,5}$/.test(config.advertiseAddress)) {
    throw new ConfigError(
      `Invalid STRATA_ADVERTISE_ADDRESS "${config.advertiseAddress}": expected host:port`,
    );
  }
  if (config.leaseTtlMs < 300) {
    throw new ConfigError(
      `Invalid STRATA_LEASE_TTL_MS ${config.leaseTtlMs}: expected at least 300 (the writer renews every third of it)`,
    );
  }
  if (config.nodeTtlMs < 2 * config.heartbeatIntervalMs) {
    throw new ConfigError(
      `Invalid STRATA_NODE_TTL_MS ${config.nodeTtlMs}: expected at least twice STRATA_HEARTBEAT_INTERVAL_MS (${config.heartbeatIntervalMs}), or live nodes drop out between heartbeats`,
    );
  }
  if (config.redisUrl !== null && !/^rediss?:\/\//.test(config.redisUrl)) {
    throw new ConfigError(`Invalid STRATA_REDIS_URL "${config.redisUrl}": expected redis://host:port`);
  }
  return Object.freeze(config);
}

function absolute(p: string): string {
  return isAbsolute(p) ? p : resolve(p);
}

function positive(value: string | undefined, fallback: number, name: string): number {
  if (value === undefined) return fallback;
  const n = Number(value);
  if (!Number.isInteger(n) || n < 1)
    throw new ConfigError(`Invalid ${name} "${value}": expected a positive integer`);
  return n;
}

function flag(value: string | undefined, fallback: boolean, name: string): boolean {
  if (value === undefined) return fallback;
  if (value === "1" || value === "true") return true;
  if (value === "0" || value === "false") return false;
  throw new ConfigError(`Invalid ${name} "${value}": expected 1 or 0`);
}

function positiveFraction(value: string | undefined, fallback: number, name: string): number {
  if (value === undefined) return fallback;
  const n = Number(value);
  if (!Number.isFinite(n) || n <= 0)
    throw new ConfigError(`Invalid ${name} "${value}": expected a number above 0, such as 0.5`);
  return n;
}

/** STRATA_KAFKA_SASL_MECHANISM, _USERNAME, _PASSWORD (all three or none) and STRATA_KAFKA_TLS. */
function kafkaSecurity(pick: (flag: undefined, envName: string) => string | undefined): KafkaSecurity {
  const mechanism = pick(undefined, "STRATA_KAFKA_SASL_MECHANISM")?.toLowerCase();
  const username = pick(undefined, "STRATA_KAFKA_SASL_USERNAME");
  const password = pick(undefined, "STRATA_KAFKA_SASL_PASSWORD");
  let sasl: KafkaSecurity["sasl"] = null;
  if (mechanism !== undefined || username !== undefined || password !== undefined) {
    if (!(KAFKA_SASL_MECHANISMS as readonly string[]).includes(mechanism ?? ""))
      throw new ConfigError(
        `Invalid STRATA_KAFKA_SASL_MECHANISM "${mechanism ?? ""}": expected ${KAFKA_SASL_MECHANISMS.join(", ")}`,
      );
    if (username === undefined || password === undefined)
      throw new ConfigError(
        "STRATA_KAFKA_SASL_MECHANISM needs STRATA_KAFKA_SASL_USERNAME and STRATA_KAFKA_SASL_PASSWORD",
      );
    sasl = { mechanism: mechanism as (typeof KAFKA_SASL_MECHANISMS)[number], username, password };
  }
  const tls = pick(undefined, "STRATA_KAFKA_TLS");
  if (tls === undefined || /^(0|false|no|off)$/i.test(tls)) return { sasl, tls: null };
  if (/^(1|true|yes|on)$/i.test(tls)) return { sasl, tls: { ca: null } };
  return { sasl, tls: { ca: readCertificate(tls, "STRATA_KAFKA_TLS") } };
}
