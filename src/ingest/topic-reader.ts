/**
 * Reads a whole topic once, from each partition's earliest offset to its high watermark at the
 * start (what `strata dead-letters` lists and replays), handing each message to `onMessage` as it
 * comes (in offset order within a partition), so that a topic of millions of messages is never
 * held in memory. Messages produced meanwhile are left for next time.
 *
 * A partition whose last offsets hold no message (compacted away, transaction markers) never
 * delivers its last offset, so once messages have come, the read also ends when nothing more has
 * come for `idleMs`. A read that gets nothing at all for `timeoutMs` fails (UnavailableError).
 */
import { UnavailableError } from "../shared/errors.js";
import type { DeltaMessage, DeltaSource } from "./delta-source.js";

export interface TopicReadOptions {
  groupId: string;
  onMessage(partition: number, message: DeltaMessage): void | Promise<void>;
  /** Without a first message for this long, the read fails. */
  timeoutMs: number;
  /** After messages came, this long without any ends the read. @default 3000 */
  idleMs?: number;
}

/** Reads the topic to its end at the start; resolves with how many messages were read. */
export async function readTopicToEnd(
  source: DeltaSource,
  topic: string,
  options: TopicReadOptions,
): Promise<number> {
  const marks = await source.watermarks(topic);
  const ends = new Map(marks.filter((m) => m.high > m.low).map((m) => [m.partition, m.high]));
  if (ends.size === 0) return 0;
  const next = new Map(marks.map((m) => [m.partition, m.low]));
  let read = 0;
  let finish!: () => void;
  const done = new Promise<void>((resolve) => (finish = resolve));
  let lastProgressMs: number | null = null;
  const subscription = await source.subscribe({
    topic,
    groupId: options.groupId,
    startAt: (partition) => next.get(partition),
    onBatch: async (batch) => {
      lastProgressMs = Date.now();
      const end = ends.get(batch.partition);
      if (end === undefined) return;
      for (const message of batch.messages) {
        if (message.offset < (next.get(batch.partition) ?? 0n) || message.offset >= end) continue;
        await options.onMessage(batch.partition, message);
        read++;
        next.set(batch.partition, message.offset + 1n);
      }
      lastProgressMs = Date.now();
      // A partition is done when the next offset reaches its end (compacted gaps included).
      if ((next.get(batch.partition) ?? 0n) >= end || batch.messages.at(-1)!.offset >= end - 1n)
        ends.delete(batch.partition);
      if (ends.size === 0) finish();
    },
  });
  const started = Date.now();
  const idleMs = options.idleMs ?? 3000;
  let failed: ((err: Error) => void) | null = null;
  const stalled = new Promise<never>((_, reject) => (failed = reject));
  const watch = setInterval(
    () => {
      if (lastProgressMs !== null) {
        if (Date.now() - lastProgressMs > idleMs) finish();
      } else if (Date.now() - started > options.timeoutMs) {
        failed?.(new UnavailableError(`Read nothing from topic "${topic}" within ${options.timeoutMs} ms`));
      }
    },
    Math.min(idleMs, 250),
  );
  try {
    await Promise.race([done, subscription.ended.then(() => done), stalled]);
  } finally {
    clearInterval(watch);
    await subscription.stop();
  }
  return read;
}
