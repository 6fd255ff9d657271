/**
 * The logger ingest writes to: pino's call shape (`logger.info({ table }, "message")`), so a pino
 * logger can be passed as is. Payloads are sizes, keys and offsets, never feature values.
 */
export interface Logger {
  debug(obj: object, msg: string): void;
  info(obj: object, msg: string): void;
  warn(obj: object, msg: string): void;
  error(obj: object, msg: string): void;
}

const ignore = (): void => undefined;

/** Says nothing: the default. */
export const silentLogger: Logger = Object.freeze({ debug: ignore, info: ignore, warn: ignore, error: ignore });

/** A logger that adds `bindings` to every entry (pino's `child` when the logger has one). */
export function childLogger(logger: Logger, bindings: Record<string, unknown>): Logger {
  const withChild = logger as Logger & { child?: (b: Record<string, unknown>) => Logger };
  if (typeof withChild.child === "function") return withChild.child(bindings);
  return {
    debug: (obj, msg) => logger.debug({ ...bindings, ...obj }, msg),
    info: (obj, msg) => logger.info({ ...bindings, ...obj }, msg),
    warn: (obj, msg) => logger.warn({ ...bindings, ...obj }, msg),
    error: (obj, msg) => logger.error({ ...bindings, ...obj }, msg),
  };
}
