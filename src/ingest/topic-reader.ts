/**
 * Reads a whole topic once, from each partition's earliest offset to its high watermark at the
 * start (what `strata dead-letters` lists): messages produced meanwhile are left for next time.
 * A partition whose last offsets hold no message (compacted away, transaction markers) never
 * delivers its last offset, so the read also ends once nothing has come for `idleMs`.
 */
import { UnavailableError } from "../shared/errors.js";
import type { DeltaMessage, DeltaSource } from "./delta-source.js";

export interface ReadMessage {
  readonly partition: number;
  readonly message: DeltaMessage;
}

export async function readTopicToEnd(
  source: DeltaSource,
  topic: string,
  options: { groupId: string; timeoutMs: number; idleMs?: number },
): Promise<ReadMessage[]> {
  const marks = await source.watermarks(topic);
  const ends = new Map(marks.filter((m) => m.high > m.low).map((m) => [m.partition, m.high]));
  if (ends.size === 0) return [];
  const read: ReadMessage[] = [];
  const next = new Map(marks.map((m) => [m.partition, m.low]));
  let finish!: () => void;
  const done = new Promise<void>((resolve) => (finish = resolve));
  let lastBatchMs = Date.now();
  const subscription = await source.subscribe({
    topic,
    groupId: options.groupId,
    startAt: (partition) => next.get(partition),
    onBatch: async (batch) => {
      lastBatchMs = Date.now();
      const end = ends.get(batch.partition);
      if (end === undefined) return;
      for (const message of batch.messages) {
        if (message.offset < (next.get(batch.partition) ?? 0n) || message.offset >= end) continue;
        read.push({ partition: batch.partition, message });
        next.set(batch.partition, message.offset + 1n);
      }
      // A partition is done when the next offset reaches its end (compacted gaps included).
      if ((next.get(batch.partition) ?? 0n) >= end || batch.messages.at(-1)!.offset >= end - 1n)
        ends.delete(batch.partition);
      if (ends.size === 0) finish();
    },
  });
  let timer: NodeJS.Timeout | undefined;
  const idleMs = options.idleMs ?? 3000;
  const idle = setInterval(() => Date.now() - lastBatchMs > idleMs && finish(), Math.min(idleMs, 250));
  try {
    const timeout = new Promise<never>((_, reject) => {
      timer = setTimeout(
        () =>
          reject(
            new UnavailableError(`Reading topic "${topic}" did not finish within ${options.timeoutMs} ms`),
          ),
        options.timeoutMs,
      );
    });
    await Promise.race([done, subscription.ended.then(() => done), timeout]);
  } finally {
    clearTimeout(timer);
    clearInterval(idle);
    await subscription.stop();
  }
  return read.sort((a, b) => a.partition - b.partition || (a.message.offset < b.message.offset ? -1 : 1));
}
