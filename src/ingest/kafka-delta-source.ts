/**
 * The kafkajs adapter of delta-source.ts: the only file of Strata that imports kafkajs.
 *
 * Consuming. Each subscription is a consumer in a group of its own (`<group>.fetch-<random>`), so
 * it always gets every partition, and joins at once: a group shared across restarts would make a
 * restarted ingestor wait for its killed predecessor's session to time out before it could read
 * again. The consumer seeks every partition it is assigned to the ingestor's position on each
 * join; positions never come from the group. Auto-commit is off.
 *
 * Committing. The table's own group (`strata-ingest.<table>`) is what lag tools look at: after
 * each publish the ingestor calls `commitProgress`, which commits the published offsets through a
 * second consumer, a member of that group that never fetches (all its partitions are paused).
 *
 * Failures. kafkajs's own restart-after-crash is off: a crashed consumer ends its subscription
 * (`ended` rejects) and the ingest loop subscribes again after a backoff, from its positions.
 */
import { randomUUID } from "node:crypto";
import {
  Kafka,
  logLevel,
  type Admin,
  type Consumer,
  type IHeaders,
  type KafkaMessage,
  type LogEntry,
  type Producer,
  type RetryOptions,
  type SASLOptions,
} from "kafkajs";
import { UnavailableError, errorMessage } from "../shared/errors.js";
import type {
  DeltaBatch,
  DeltaMessage,
  DeltaProducer,
  DeltaSource,
  DeltaSubscription,
  OutgoingMessage,
  PartitionWatermarks,
  SubscribeOptions,
} from "./delta-source.js";
import { silentLogger, type Logger } from "../shared/logger.js";
import type { Config, KafkaSecurity } from "../config/config.js";

export interface KafkaClientOptions {
  readonly brokers: readonly string[];
  readonly clientId?: string;
  readonly logger?: Logger;
  /** SASL and TLS (config.ts KafkaSecurity); plaintext and anonymous by default. */
  readonly security?: KafkaSecurity;
  /** Per request; a broker that does not answer within it counts as down. @default 30000 */
  readonly requestTimeoutMs?: number;
}

/** kafkajs retries a little by itself; longer outages are the ingest loop's backoff. */
const RETRY: RetryOptions = {
  initialRetryTime: 300,
  maxRetryTime: 3_000,
  retries: 4,
  restartOnFailure: async () => false,
};

const FETCH_MAX_BYTES = 16 << 20;
const FETCH_MAX_BYTES_PER_PARTITION = 2 << 20;
/** How long a fetch waits for data: bounds the delay a quiet topic adds to freshness. */
const FETCH_MAX_WAIT_MS = 100;

/** The client options of `config`'s brokers and security, for the client named `clientId`. */
export function kafkaClientOptions(
  config: Pick<Config, "kafkaBrokers" | "kafkaSecurity">,
  clientId: string,
  logger?: Logger,
): KafkaClientOptions {
  return {
    brokers: config.kafkaBrokers,
    security: config.kafkaSecurity,
    clientId,
    ...(logger ? { logger } : {}),
  };
}

export function createKafka(options: KafkaClientOptions): Kafka {
  const log = (options.logger ?? silentLogger).child({ component: "kafkajs" });
  const { sasl, tls } = options.security ?? { sasl: null, tls: null };
  return new Kafka({
    clientId: options.clientId ?? "strata",
    brokers: [...options.brokers],
    ...(tls ? { ssl: tls.ca ? { ca: [tls.ca] } : true } : {}),
    // kafkajs types each mechanism apart; the three take the same username and password.
    ...(sasl ? { sasl: { ...sasl } as SASLOptions } : {}),
    connectionTimeout: 3_000,
    requestTimeout: options.requestTimeoutMs ?? 30_000,
    retry: RETRY,
    // kafkajs logs every retry of an outage as an error; the ingest loop reports the outage once
    // per attempt, so kafkajs speaks at debug level only.
    logLevel: logLevel.WARN,
    logCreator:
      () =>
      ({ namespace, log: entry }: LogEntry) => {
        const { message, ...extra } = entry;
        log.debug({ namespace, ...pickScalars(extra) }, String(message));
      },
  });
}

export class KafkaDeltaSource implements DeltaSource {
  private readonly kafka: Kafka;
  private readonly log: Logger;
  private admin: Promise<Admin> | null = null;
  private readonly committers = new Map<string, ProgressCommitter>();
  private readonly subscriptions = new Set<DeltaSubscription>();

  constructor(options: KafkaClientOptions) {
    this.kafka = createKafka(options);
    this.log = (options.logger ?? silentLogger).child({ component: "kafka-source" });
  }

  async subscribe(options: SubscribeOptions): Promise<DeltaSubscription> {
    const { topic } = options;
    const consumer = this.kafka.consumer({
      groupId: `${options.groupId}.fetch-${randomUUID().slice(0, 8)}`,
      retry: RETRY,
      maxWaitTimeInMs: FETCH_MAX_WAIT_MS,
      maxBytes: FETCH_MAX_BYTES,
      maxBytesPerPartition: FETCH_MAX_BYTES_PER_PARTITION,
      // Nobody shares this group, so the session only matters if we stall: be generous.
      sessionTimeout: 30_000,
      heartbeatInterval: 3_000,
    });
    let stopped = false;
    let settle!: { resolve: () => void; reject: (err: unknown) => void };
    const ended = new Promise<void>((resolve, reject) => (settle = { resolve, reject }));
    // The caller may only look at `ended` later: never let it count as unhandled meanwhile.
    ended.catch(() => undefined);
    consumer.on(consumer.events.CRASH, ({ payload }) => {
      if (!stopped) settle.reject(payload.error);
    });
    consumer.on(consumer.events.GROUP_JOIN, ({ payload }) => {
      // Every (re)assignment: start each partition at the ingestor's position. kafkajs discards
      // batches fetched before a seek is applied (`isStale`), so nothing before it is delivered.
      for (const partition of payload.memberAssignment[topic] ?? []) {
        const at = options.startAt(partition);
        if (at !== undefined) consumer.seek({ topic, partition, offset: at.toString() });
      }
    });
    try {
      await consumer.connect();
      // With no committed offsets (the group is new), a partition without a position starts at its earliest.
      await consumer.subscribe({ topic, fromBeginning: true });
      await consumer.run({
        autoCommit: false,
        eachBatchAutoResolve: true,
        partitionsConsumedConcurrently: 1,
        eachBatch: async ({ batch, isRunning, isStale }) => {
          if (stopped || !isRunning() || isStale() || batch.messages.length === 0) return;
          await options.onBatch({
            topic: batch.topic,
            partition: batch.partition,
            highWatermark: BigInt(batch.highWatermark),
            messages: batch.messages.map(toDeltaMessage),
          } satisfies DeltaBatch);
        },
      });
    } catch (err) {
      stopped = true;
      await consumer.disconnect().catch(() => undefined);
      throw new UnavailableError(`Cannot consume topic "${topic}": ${errorMessage(err)}`, { cause: err });
    }
    const subscription: DeltaSubscription = {
      ended,
      stop: async () => {
        if (stopped) return;
        stopped = true;
        this.subscriptions.delete(subscription);
        await consumer
          .disconnect()
          .catch((err: unknown) => this.log.debug({ err: errorMessage(err) }, "Disconnect failed"));
        settle.resolve();
      },
    };
    this.subscriptions.add(subscription);
    return subscription;
  }

  async watermarks(topic: string): Promise<PartitionWatermarks[]> {
    try {
      const admin = await this.connectAdmin();
      const offsets = await admin.fetchTopicOffsets(topic);
      return offsets.map((o) => ({ partition: o.partition, low: BigInt(o.low), high: BigInt(o.high) }));
    } catch (err) {
      await this.dropAdmin();
      throw new UnavailableError(`Cannot read the offsets of topic "${topic}": ${errorMessage(err)}`, {
        cause: err,
      });
    }
  }

  async commitProgress(groupId: string, topic: string, offsets: ReadonlyMap<number, bigint>): Promise<void> {
    const id = `${groupId}\u0000${topic}`;
    let committer = this.committers.get(id);
    if (!committer) {
      committer = new ProgressCommitter(this.kafka, groupId, topic);
      this.committers.set(id, committer);
    }
    await committer.commit(offsets);
  }

  async close(): Promise<void> {
    await Promise.allSettled([...this.subscriptions].map((s) => s.stop()));
    await Promise.allSettled([...this.committers.values()].map((c) => c.close()));
    this.committers.clear();
    await this.dropAdmin();
  }

  private connectAdmin(): Promise<Admin> {
    if (!this.admin) {
      const admin = this.kafka.admin({ retry: RETRY });
      this.admin = admin.connect().then(() => admin);
      this.admin.catch(() => (this.admin = null));
    }
    return this.admin;
  }

  private async dropAdmin(): Promise<void> {
    const admin = this.admin;
    this.admin = null;
    if (admin) await admin.then((a) => a.disconnect()).catch(() => undefined);
  }
}

/**
 * Commits offsets to a consumer group it joins without fetching. Calls coalesce: while one commit
 * is in flight (or the join waits for a dead predecessor's session to expire), later calls only
 * replace the offsets it sends next.
 */
class ProgressCommitter {
  private consumer: Consumer | null = null;
  /** Settles once `consumer` is a member of the group (possibly after a dead predecessor's session expires). */
  private joined: Promise<void> | null = null;
  private next: ReadonlyMap<number, bigint> | null = null;
  private running: Promise<void> | null = null;

  constructor(
    private readonly kafka: Kafka,
    private readonly groupId: string,
    private readonly topic: string,
  ) {}

  commit(offsets: ReadonlyMap<number, bigint>): Promise<void> {
    this.next = offsets;
    this.running ??= this.drain().finally(() => (this.running = null));
    return this.running;
  }

  private async drain(): Promise<void> {
    while (this.next) {
      const offsets = this.next;
      this.next = null;
      if (offsets.size === 0) continue;
      try {
        const consumer = await this.member();
        await consumer.commitOffsets(
          [...offsets].map(([partition, offset]) => ({
            topic: this.topic,
            partition,
            offset: offset.toString(),
          })),
        );
      } catch (err) {
        await this.close();
        throw err;
      }
    }
  }

  private async member(): Promise<Consumer> {
    if (!this.consumer) {
      const consumer = this.kafka.consumer({
        groupId: this.groupId,
        retry: RETRY,
        sessionTimeout: 10_000,
        heartbeatInterval: 1_000,
        // With every partition paused, each fetch round is a sleep of this long, and a disconnect
        // waits for it (kafkajs's default of 5 s would make every stop take 5 s).
        maxWaitTimeInMs: 200,
      });
      this.consumer = consumer;
      this.joined = (async () => {
        const joined = new Promise<void>((resolve) =>
          consumer.on(consumer.events.GROUP_JOIN, () => resolve()),
        );
        await consumer.connect();
        await consumer.subscribe({ topic: this.topic });
        void consumer.run({ autoCommit: false, eachBatch: async () => undefined }).catch(() => undefined);
        consumer.pause([{ topic: this.topic }]); // a member for commits only: it never fetches
        await joined;
      })();
    }
    const consumer = this.consumer;
    await this.joined;
    return consumer;
  }

  /** Leaves the group at once, even while the join is still waiting. */
  async close(): Promise<void> {
    const consumer = this.consumer;
    this.consumer = null;
    this.joined = null;
    if (consumer) await consumer.disconnect().catch(() => undefined);
  }
}

export class KafkaDeltaProducer implements DeltaProducer {
  private readonly kafka: Kafka;
  private producer: Promise<Producer> | null = null;

  constructor(options: KafkaClientOptions) {
    this.kafka = createKafka(options);
  }

  async send(topic: string, messages: readonly OutgoingMessage[]): Promise<void> {
    if (messages.length === 0) return;
    try {
      const producer = await this.connect();
      await producer.send({
        topic,
        acks: -1,
        messages: messages.map((m) => ({
          key: m.key,
          value: m.value,
          headers: m.headers ? { ...m.headers } : undefined,
          timestamp: m.timestampMs === undefined ? undefined : String(m.timestampMs),
        })),
      });
    } catch (err) {
      await this.close();
      throw new UnavailableError(`Cannot produce to topic "${topic}": ${errorMessage(err)}`, { cause: err });
    }
  }

  async close(): Promise<void> {
    const producer = this.producer;
    this.producer = null;
    if (producer) await producer.then((p) => p.disconnect()).catch(() => undefined);
  }

  private connect(): Promise<Producer> {
    if (!this.producer) {
      const producer = this.kafka.producer({ retry: RETRY, allowAutoTopicCreation: true });
      this.producer = producer.connect().then(() => producer);
      this.producer.catch(() => (this.producer = null));
    }
    return this.producer;
  }
}

function toDeltaMessage(m: KafkaMessage): DeltaMessage {
  return {
    offset: BigInt(m.offset),
    key: m.key ?? null,
    value: m.value ?? null,
    headers: firstHeaderValues(m.headers),
    timestampMs: Number(m.timestamp),
  };
}

const NO_HEADERS: Readonly<Record<string, Buffer | string | undefined>> = Object.freeze({});

function firstHeaderValues(
  headers: IHeaders | undefined,
): Readonly<Record<string, Buffer | string | undefined>> {
  if (!headers) return NO_HEADERS;
  let out: Record<string, Buffer | string | undefined> | null = null;
  for (const name in headers) {
    const v = headers[name];
    out ??= {};
    out[name] = Array.isArray(v) ? v[0] : v;
  }
  return out ?? NO_HEADERS;
}

function pickScalars(obj: Record<string, unknown>): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(obj)) if (v === null || typeof v !== "object") out[k] = v;
  return out;
}
