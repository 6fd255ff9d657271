/** Defaults, units in the names. */
export const DEFAULT_DATA_DIR = "segments";
export const DEFAULT_CONFIG_PATH = "strata.tables.json";
export const DEFAULT_HOST = "127.0.0.1";
export const DEFAULT_GRPC_PORT = 50051;
export const DEFAULT_METRICS_PORT = 9464;
export const DEFAULT_KEEP_VERSIONS = 10;
export const DEFAULT_MAX_KEYS_PER_REQUEST = 10_000;
