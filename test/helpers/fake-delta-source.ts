// An in-memory Kafka for ingest unit tests: topics of partitions of messages with offsets,
// subscriptions that deliver batches from the positions the ingestor asks for, a switch that
// takes the "broker" down, and a producer that records what it sends.
import type {
  DeltaBatch,
  DeltaMessage,
  DeltaProducer,
  DeltaSource,
  DeltaSubscription,
  OutgoingMessage,
  PartitionWatermarks,
  SubscribeOptions,
} from "../../src/ingest/delta-source.js";

interface FakeSubscription extends DeltaSubscription {
  fail(err: Error): void;
}

export class FakeKafka {
  private readonly topics = new Map<string, DeltaMessage[][]>();
  down = false;
  /** Messages per delivered batch. */
  batchSize = 100;

  createTopic(topic: string, partitions: number): void {
    this.topics.set(
      topic,
      Array.from({ length: partitions }, () => []),
    );
  }

  partitions(topic: string): DeltaMessage[][] {
    const t = this.topics.get(topic);
    if (!t) throw new Error(`no topic ${topic}`);
    return t;
  }

  /** Appends a message; returns its offset. */
  produce(
    topic: string,
    partition: number,
    message: {
      key?: string | null;
      value: string | Buffer | null;
      headers?: Record<string, string>;
      timestampMs?: number;
    },
  ): bigint {
    const log = this.partitions(topic)[partition]!;
    const offset = BigInt(log.length);
    log.push({
      offset,
      key: message.key == null ? null : Buffer.from(message.key),
      value: message.value === null ? null : Buffer.from(message.value),
      headers: message.headers ?? {},
      timestampMs: message.timestampMs ?? 1_000,
    });
    return offset;
  }

  /** Messages with these offsets are gone (compaction, transaction markers): offsets jump. */
  skipOffsets(topic: string, partition: number, count: number): void {
    const log = this.partitions(topic)[partition]!;
    for (let i = 0; i < count; i++) log.push(null as unknown as DeltaMessage);
  }
}

export class FakeDeltaSource implements DeltaSource {
  readonly commits: { groupId: string; topic: string; offsets: Map<number, bigint> }[] = [];
  subscribeCalls = 0;
  private readonly active = new Set<FakeSubscription>();

  constructor(readonly kafka: FakeKafka) {}

  /** Ends every subscription with an error, as a broker outage does. */
  failAll(err = new Error("broker down")): void {
    for (const s of [...this.active]) s.fail(err);
  }

  get activeSubscriptions(): number {
    return this.active.size;
  }

  async subscribe(options: SubscribeOptions): Promise<DeltaSubscription> {
    this.subscribeCalls++;
    if (this.kafka.down) throw new Error("broker down");
    const partitions = this.kafka.partitions(options.topic);
    const next = partitions.map((_, p) => options.startAt(p) ?? 0n);
    let stopped = false;
    let settle!: { resolve: () => void; reject: (e: unknown) => void };
    const ended = new Promise<void>((resolve, reject) => (settle = { resolve, reject }));
    ended.catch(() => undefined);
    const sub: FakeSubscription = {
      ended,
      stop: async () => {
        if (stopped) return;
        stopped = true;
        this.active.delete(sub);
        await pumping;
        settle.resolve();
      },
      fail: (err) => {
        if (stopped) return;
        stopped = true;
        this.active.delete(sub);
        settle.reject(err);
      },
    };
    this.active.add(sub);
    const pump = async (): Promise<void> => {
      while (!stopped) {
        let delivered = false;
        for (let p = 0; p < partitions.length && !stopped; p++) {
          const log = partitions[p]!;
          const from = Number(next[p]!);
          if (from >= log.length) continue;
          const slice = log.slice(from, from + this.kafka.batchSize);
          const messages = slice.filter((m) => m !== null);
          next[p] = BigInt(from + slice.length);
          if (messages.length === 0) continue;
          const batch: DeltaBatch = {
            topic: options.topic,
            partition: p,
            highWatermark: BigInt(log.length),
            messages,
          };
          try {
            await options.onBatch(batch);
            delivered = true;
          } catch (err) {
            sub.fail(err as Error);
            return;
          }
        }
        if (!delivered) await new Promise((r) => setTimeout(r, 5));
      }
    };
    const pumping = pump();
    return sub;
  }

  async watermarks(topic: string): Promise<PartitionWatermarks[]> {
    if (this.kafka.down) throw new Error("broker down");
    return this.kafka
      .partitions(topic)
      .map((log, partition) => ({ partition, low: 0n, high: BigInt(log.length) }));
  }

  async commitProgress(groupId: string, topic: string, offsets: ReadonlyMap<number, bigint>): Promise<void> {
    if (this.kafka.down) throw new Error("broker down");
    this.commits.push({ groupId, topic, offsets: new Map(offsets) });
  }

  async close(): Promise<void> {
    await Promise.all([...this.active].map((s) => s.stop()));
  }
}

export class FakeDeltaProducer implements DeltaProducer {
  readonly sent = new Map<string, OutgoingMessage[]>();
  down = false;

  async send(topic: string, messages: readonly OutgoingMessage[]): Promise<void> {
    if (this.down) throw new Error("dead-letter broker down");
    const list = this.sent.get(topic) ?? [];
    list.push(...messages);
    this.sent.set(topic, list);
  }

  async close(): Promise<void> {}
}
