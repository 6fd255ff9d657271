/**
 * The seam between ingest and a Kafka client. kafkajs (kafka-delta-source.ts) is the one
 * implementation today; kafkajs has had no release since 2023, so nothing outside that adapter
 * may import it. Tests plug in fakes.
 *
 * Positions are ours, not the client's: the ingestor says where each partition starts (the next
 * offset of the current version's manifest), and the consumer group only records published
 * offsets for lag tools. Offsets are bigints (Kafka offsets are 64-bit).
 */

/** One Kafka message, as ingest sees it. */
export interface DeltaMessage {
  readonly offset: bigint;
  readonly key: Buffer | null;
  readonly value: Buffer | null;
  /** Header values; of a header repeated in the message, the first. */
  readonly headers: Readonly<Record<string, Buffer | string | undefined>>;
  /** Message timestamp, ms since the epoch. */
  readonly timestampMs: number;
}

/** Messages of one partition, in offset order. */
export interface DeltaBatch {
  readonly topic: string;
  readonly partition: number;
  /** The partition's high watermark when fetched: the offset the next produced message gets. */
  readonly highWatermark: bigint;
  readonly messages: readonly DeltaMessage[];
}

export interface SubscribeOptions {
  readonly topic: string;
  /** The table's consumer group (the one lag tools look at). */
  readonly groupId: string;
  /**
   * Where a partition starts, asked whenever partitions are (re)assigned: the next offset to
   * read, or undefined to start at the partition's earliest offset.
   */
  startAt(partition: number): bigint | undefined;
  /**
   * Called with one batch at a time, never concurrently, in offset order per partition. When it
   * rejects, the subscription ends with that error.
   */
  onBatch(batch: DeltaBatch): Promise<void>;
}

export interface DeltaSubscription {
  /** Settles when consumption ends: resolves after `stop()`, rejects when the source fails. */
  readonly ended: Promise<void>;
  /** Stops consuming; no `onBatch` call starts after it resolves. */
  stop(): Promise<void>;
}

export interface PartitionWatermarks {
  readonly partition: number;
  /** The earliest offset still in the log. */
  readonly low: bigint;
  /** The offset the next produced message gets. */
  readonly high: bigint;
}

export interface DeltaSource {
  /** Starts consuming a topic. Rejects when the broker cannot be reached (retriable). */
  subscribe(options: SubscribeOptions): Promise<DeltaSubscription>;
  /** The low and high watermarks of every partition of `topic`. */
  watermarks(topic: string): Promise<PartitionWatermarks[]>;
  /**
   * Records `offsets` (partition → next offset) as the group's committed position, for lag tools.
   * Advisory: ingest never reads it back. The latest call wins.
   */
  commitProgress(groupId: string, topic: string, offsets: ReadonlyMap<number, bigint>): Promise<void>;
  close(): Promise<void>;
}

/** A message to produce. */
export interface OutgoingMessage {
  readonly key: Buffer | string | null;
  readonly value: Buffer | string | null;
  readonly headers?: Readonly<Record<string, Buffer | string>>;
  /** The message timestamp, ms since the epoch; default: when it is sent. */
  readonly timestampMs?: number;
}

export interface DeltaProducer {
  /** Sends messages and resolves once every broker replica has them (acks = all). */
  send(topic: string, messages: readonly OutgoingMessage[]): Promise<void>;
  close(): Promise<void>;
}
