/** Defaults, units in the names. */
export const DEFAULT_DATA_DIR = "segments";
export const DEFAULT_CONFIG_PATH = "strata.tables.json";
export const DEFAULT_HOST = "127.0.0.1";
export const DEFAULT_GRPC_PORT = 50051;
export const DEFAULT_METRICS_PORT = 9464;
export const DEFAULT_KEEP_VERSIONS = 10;
export const DEFAULT_MAX_KEYS_PER_REQUEST = 10_000;
/** Ingest: publish a delta version once the oldest pending change is this old. */
export const DEFAULT_INGEST_PUBLISH_INTERVAL_MS = 200;
/** Ingest: ...or once this many distinct keys are pending. */
export const DEFAULT_INGEST_PUBLISH_MAX_ROWS = 50_000;
/** Ingest: compact when the current version has this many delta segments... */
export const DEFAULT_INGEST_COMPACT_MAX_DELTAS = 16;
/** Ingest: ...or when its delta records pass this fraction of its base records (1: a compaction rewrites at most twice what was ingested since the last one). */
export const DEFAULT_INGEST_COMPACT_DELTA_RATIO = 1;
/** Ingest: the dead-letter topic of a table is its topic plus this suffix. */
export const DEFAULT_INGEST_DEAD_LETTER_SUFFIX = ".dlq";
/** Ingest: the consumer group (for lag tools) of a table is this prefix plus its name. */
export const DEFAULT_INGEST_GROUP_PREFIX = "strata-ingest.";
/** Ingest: the largest delta message value accepted (Kafka's own default limit is about 1 MB). */
export const DEFAULT_INGEST_MAX_MESSAGE_BYTES = 1 << 20;
/** Ingest: the largest string or bytes feature value accepted in a delta. */
export const DEFAULT_INGEST_MAX_VALUE_BYTES = 256 << 10;
/** Fleet: the name of the fleet, which prefixes every Redis key (several fleets can share one Redis). */
export const DEFAULT_FLEET_NAME = "default";
/** Fleet: a writer's lease expires this long after its last renewal (a standby takes over then). */
export const DEFAULT_LEASE_TTL_MS = 10_000;
/** Fleet: how often a node writes its heartbeat (status, versions served). */
export const DEFAULT_HEARTBEAT_INTERVAL_MS = 1_000;
/** Fleet: a node that has not written a heartbeat for this long is gone from the registry. */
export const DEFAULT_NODE_TTL_MS = 5_000;
