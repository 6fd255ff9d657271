/**
 * Runtime configuration: the one place that reads process.env. Flags win over environment
 * variables, which win over defaults. Parsed once, checked, frozen.
 */
import { isAbsolute, resolve } from "node:path";
import { ConfigError } from "../shared/errors.js";
import {
  DEFAULT_CONFIG_PATH,
  DEFAULT_DATA_DIR,
  DEFAULT_GRPC_PORT,
  DEFAULT_HOST,
  DEFAULT_KEEP_VERSIONS,
  DEFAULT_MAX_KEYS_PER_REQUEST,
  DEFAULT_METRICS_PORT,
} from "./defaults.js";

export interface Config {
  /** Root of the table directories. @default "segments" (env STRATA_DATA_DIR) */
  readonly dataDir: string;
  /** Path of strata.tables.json. @default "strata.tables.json" (env STRATA_CONFIG) */
  readonly tablesConfigPath: string;
  /** Kafka brokers, host:port; empty = no ingest. (env STRATA_KAFKA_BROKERS, comma separated) */
  readonly kafkaBrokers: readonly string[];
  /** Redis URL of the fleet control plane; null = single host. (env STRATA_REDIS_URL) */
  readonly redisUrl: string | null;
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
  /** Bearer token required in `authorization` metadata; null = none. (env STRATA_AUTH_TOKEN) */
  readonly authToken: string | null;
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
  const config: Config = {
    dataDir: absolute(pick(flags.dataDir, "STRATA_DATA_DIR") ?? DEFAULT_DATA_DIR),
    tablesConfigPath: absolute(pick(flags.config, "STRATA_CONFIG") ?? DEFAULT_CONFIG_PATH),
    kafkaBrokers: brokers ? brokers.split(",").map((b) => b.trim()).filter(Boolean) : [],
    redisUrl: pick(flags.redisUrl, "STRATA_REDIS_URL") ?? null,
    host: pick(flags.host, "STRATA_HOST") ?? DEFAULT_HOST,
    port: port(pick(flags.port, "STRATA_PORT"), DEFAULT_GRPC_PORT, "port (STRATA_PORT)"),
    metricsPort:
      pick(flags.metricsPort, "STRATA_METRICS_PORT") === "off"
        ? null
        : port(pick(flags.metricsPort, "STRATA_METRICS_PORT"), DEFAULT_METRICS_PORT, "metrics port (STRATA_METRICS_PORT)"),
    keepVersions: positive(pick(undefined, "STRATA_KEEP_VERSIONS"), DEFAULT_KEEP_VERSIONS, "STRATA_KEEP_VERSIONS"),
    maxKeysPerRequest: positive(pick(undefined, "STRATA_MAX_KEYS_PER_REQUEST"), DEFAULT_MAX_KEYS_PER_REQUEST, "STRATA_MAX_KEYS_PER_REQUEST"),
    authToken: pick(undefined, "STRATA_AUTH_TOKEN") ?? null,
  };
  for (const b of config.kafkaBrokers) {
    if (!/^[^:\s]+:\d{1,5}$/.test(b)) throw new ConfigError(`Invalid STRATA_KAFKA_BROKERS entry "${b}": expected host:port`);
  }
  if (config.redisUrl !== null && !/^rediss?:\/\//.test(config.redisUrl)) {
    throw new ConfigError(`Invalid STRATA_REDIS_URL "${config.redisUrl}": expected redis://host:port`);
  }
  return Object.freeze(config);
}

function absolute(p: string): string {
  return isAbsolute(p) ? p : resolve(p);
}

function port(value: string | undefined, fallback: number, name: string): number {
  if (value === undefined) return fallback;
  const n = Number(value);
  if (!Number.isInteger(n) || n < 0 || n > 65535) throw new ConfigError(`Invalid ${name} "${value}": expected 0 to 65535`);
  return n;
}

function positive(value: string | undefined, fallback: number, name: string): number {
  if (value === undefined) return fallback;
  const n = Number(value);
  if (!Number.isInteger(n) || n < 1) throw new ConfigError(`Invalid ${name} "${value}": expected a positive integer`);
  return n;
}
