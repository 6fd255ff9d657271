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
      // The original's: the event time of a delta that names none (and what a replay sends again).
      timestampMs: source.timestampMs,
    },
  };
}

function copy(v: Buffer | string): Buffer | string {
  return typeof v === "string" ? v : Buffer.from(v);
}

/**
 * A dead letter that owns its bytes: a fetched message is a view of its whole fetch response,
 * which a kept letter must not hold alive.
 */
export function detached(letter: StoredDeadLetter): StoredDeadLetter {
  const m = letter.message;
  const headers: Record<string, Buffer | string | undefined> = {};
  for (const name in m.headers) {
    const v = m.headers[name];
    headers[name] = v === undefined ? v : copy(v);
  }
  return {
    ...letter,
    message: { ...m, key: m.key && Buffer.from(m.key), value: m.value && Buffer.from(m.value), headers },
  };
}

/** A dead letter read back from its topic (`strata dead-letters`). */
export interface StoredDeadLetter {
  /** Where it is in the dead-letter topic. */
  readonly partition: number;
  readonly offset: bigint;
  /** `strata-error-kind` and `strata-error`; "unknown" and "" for a message without them. */
  readonly kind: string;
  readonly reason: string;
  /** Where the refused delta was read, from the source headers ("topic/partition/offset"), or null. */
  readonly source: string | null;
  /** The message as it is in the dead-letter topic: the original key, value and timestamp. */
  readonly message: DeltaMessage;
}

const headerText = (v: Buffer | string | undefined): string | undefined =>
  v === undefined ? undefined : String(v);

export function storedDeadLetter(partition: number, message: DeltaMessage): StoredDeadLetter {
  const h = message.headers;
  const topic = headerText(h[DEAD_LETTER_HEADERS.sourceTopic]);
  const sourcePartition = headerText(h[DEAD_LETTER_HEADERS.sourcePartition]);
  const sourceOffset = headerText(h[DEAD_LETTER_HEADERS.sourceOffset]);
  return {
    partition,
    offset: message.offset,
    kind: headerText(h[DEAD_LETTER_HEADERS.kind]) ?? "unknown",
    reason: headerText(h[DEAD_LETTER_HEADERS.error]) ?? "",
    source:
      topic !== undefined && sourcePartition !== undefined && sourceOffset !== undefined
        ? `${topic}/${sourcePartition}/${sourceOffset}`
        : null,
    message,
  };
}

/** Marks a replayed delta with the dead letter it came from ("topic/partition/offset"). */
export const REPLAYED_FROM_HEADER = "strata-replayed-from";

/**
 * The delta to send again to the table's topic: the original key, value, headers and timestamp,
 * without the dead letter's own headers, marked with where it was in `deadLetterTopic`.
 */
export function replayMessage(deadLetterTopic: string, letter: StoredDeadLetter): OutgoingMessage {
  const headers: Record<string, Buffer | string> = {};
  for (const name in letter.message.headers) {
    const v = letter.message.headers[name];
    if (v !== undefined && !name.startsWith("strata-")) headers[name] = v;
  }
  headers[REPLAYED_FROM_HEADER] = `${deadLetterTopic}/${letter.partition}/${letter.offset}`;
  return {
    key: letter.message.key,
    value: letter.message.value,
    headers,
    timestampMs: letter.message.timestampMs,
  };
}
