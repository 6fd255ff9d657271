/**
 * Dead letters: a refused delta goes to the table's dead-letter topic (`<topic>.dlq` unless
 * configured) with its key, value and headers as they were, plus headers that say why and where
 * from:
 *
 *   strata-error             the reason, in words ("Feature "age" (int64): expected ...")
 *   strata-error-kind        the problem kind (errors.ts DELTA_PROBLEMS), for counting and routing
 *   strata-table             the table the topic feeds
 *   strata-source-topic      \
 *   strata-source-partition   } where the message was read
 *   strata-source-offset     /
 *
 * Delivery is at least once: a version includes an offset only after that offset's dead letter is
 * acknowledged by the broker, and a crash before the publish sends it again on replay (the source
 * headers tell the copies apart).
 */
import type { DeltaMessage, OutgoingMessage } from "./delta-source.js";
import type { DeltaProblem } from "./errors.js";

export const DEAD_LETTER_HEADERS = {
  error: "strata-error",
  kind: "strata-error-kind",
  table: "strata-table",
  sourceTopic: "strata-source-topic",
  sourcePartition: "strata-source-partition",
  sourceOffset: "strata-source-offset",
} as const;

export interface DeadLetter {
  readonly partition: number;
  readonly offset: bigint;
  readonly problem: DeltaProblem;
  readonly message: OutgoingMessage;
}

export function deadLetterOf(
  table: string,
  topic: string,
  partition: number,
  source: DeltaMessage,
  problem: DeltaProblem,
  reason: string,
): DeadLetter {
  const headers: Record<string, Buffer | string> = {};
  for (const name in source.headers) {
    const v = source.headers[name];
    // Our own headers of an earlier pass (a re-driven dead letter) give way to this one's.
    if (v !== undefined && !name.startsWith("strata-")) headers[name] = copy(v);
  }
  headers[DEAD_LETTER_HEADERS.error] = reason;
  headers[DEAD_LETTER_HEADERS.kind] = problem;
  headers[DEAD_LETTER_HEADERS.table] = table;
  headers[DEAD_LETTER_HEADERS.sourceTopic] = topic;
  headers[DEAD_LETTER_HEADERS.sourcePartition] = String(partition);
  headers[DEAD_LETTER_HEADERS.sourceOffset] = source.offset.toString();
  return {
    partition,
    offset: source.offset,
    problem,
    // Copies: the source buffers are views of a whole fetch response, which must not stay alive.
    message: {
      key: source.key && Buffer.from(source.key),
      value: source.value && Buffer.from(source.value),
      headers,
    },
  };
}

function copy(v: Buffer | string): Buffer | string {
  return typeof v === "string" ? v : Buffer.from(v);
}
