/**
 * Drives one table's ingest: a subscription to its topic that applies batches to the
 * TableIngestor, and a timer that publishes when due, follows pin and resume, and refreshes the
 * partitions' watermarks for the lag.
 *
 * Nothing thrown by the source, the broker or the disk leaves this loop: a failed subscription is
 * made again after a backoff from the ingestor's positions (which the pending merge has reached,
 * so nothing is read twice and nothing is skipped), and a failed publish keeps the merge and is
 * tried again. Serving never depends on it.
 */
import type { Manifest } from "../storage/manifest.js";
import { errorMessage } from "../shared/errors.js";
import { Backoff } from "../shared/backoff.js";
import type { DeltaBatch, DeltaProducer, DeltaSource, DeltaSubscription } from "./delta-source.js";
import type { DecodePool } from "./decode-pool.js";
import type { DecodedBatch } from "./decoded-batch.js";
import type { IngestStatus } from "./ingest-status.js";
import type { Logger } from "../shared/logger.js";
import type { PublishOutcome, TableIngestor } from "./table-ingestor.js";

export interface IngestLoopOptions {
  readonly groupId: string;
  readonly deadLetterTopic: string;
  /** How often the timer looks at the table (publish due, pin, resume). @default 50 */
  readonly tickMs?: number;
  /** How often the partitions' high watermarks are read for the lag. @default 2000 */
  readonly watermarkRefreshMs?: number;
  /** Backoff after a source failure. @default 500 to 10000 */
  readonly retryInitialMs?: number;
  readonly retryMaxMs?: number;
  readonly onPublished?: (table: string, version: number) => void;
  /** Decodes batches off the event loop; without it (or without its worker) they are decoded inline. */
  readonly decodePool?: DecodePool;
}

/**
 * A batch is decoded in slices of this many messages, so that the first slice is applied while
 * the worker decodes the next (a fetch brings batches of up to ~10 000 messages a partition).
 */
const DECODE_SLICE = 2_048;
/**
 * Slices read but not yet applied, at most: while the worker decodes them, Kafka is read on.
 * More would only hold more memory; the merge applies them one at a time anyway.
 */
const MAX_SLICES_IN_FLIGHT = 8;

export class TableIngestLoop {
  private readonly log: Logger;
  private readonly sourceBackoff: Backoff;
  private readonly publishBackoff: Backoff;
  private publishRetryAtMs = 0;
  private subscription: DeltaSubscription | null = null;
  private running: Promise<void> | null = null;
  private stopping = false;
  private timers: NodeJS.Timeout[] = [];
  private ticking: Promise<void> | null = null;
  private deadLetterSend: Promise<void> | null = null;
  private wakeRunLoop: (() => void) | null = null;
  /** The batches in flight, applied one after another in the order they were read. */
  private applying: Promise<void> = Promise.resolve();
  /** One promise per slice in flight, oldest first; each settles once its slice is applied. */
  private readonly inFlight: Promise<void>[] = [];
  /** Why applying a batch failed (the dead letters could not be sent): ends the subscription. */
  private applyFailure: unknown = null;

  constructor(
    private readonly ingestor: TableIngestor,
    private readonly source: DeltaSource,
    private readonly producer: DeltaProducer,
    private readonly options: IngestLoopOptions,
    logger: Logger,
  ) {
    this.log = logger.child({ table: ingestor.table, topic: ingestor.topic });
    this.sourceBackoff = new Backoff(options.retryInitialMs ?? 500, options.retryMaxMs ?? 10_000);
    this.publishBackoff = new Backoff(options.retryInitialMs ?? 500, options.retryMaxMs ?? 10_000);
  }

  start(): void {
    this.running = this.run();
    this.timers.push(setInterval(() => void this.tick(), this.options.tickMs ?? 50));
    const refresh = (): void => void this.refreshWatermarks();
    this.timers.push(setInterval(refresh, this.options.watermarkRefreshMs ?? 2_000));
    refresh();
    for (const t of this.timers) t.unref();
  }

  status(): IngestStatus {
    return this.ingestor.status();
  }

  /**
   * Stops consuming, then publishes what is merged (a clean stop leaves nothing to replay; a
   * crash would replay it, which is fine too), then commits it to the group.
   */
  async stop(): Promise<void> {
    if (this.stopping) return;
    this.stopping = true;
    const started = Date.now();
    for (const t of this.timers) clearInterval(t);
    await this.subscription?.stop().catch(() => undefined);
    this.wakeRunLoop?.();
    await this.running;
    await this.applying;
    await this.ticking;
    this.log.debug({ ms: Date.now() - started }, "Stopped consuming");
    if (!this.ingestor.isPaused) {
      let outcome: PublishOutcome | null = null;
      try {
        await withTimeout(this.sendDeadLetters(), 5_000);
        outcome = this.ingestor.publish();
        this.afterPublish(outcome);
      } catch (err) {
        this.log.warn(
          { err: errorMessage(err) },
          "Final publish skipped: the merge will be replayed from Kafka",
        );
      }
      // Best effort, and short: the group may still be waiting for a killed predecessor's session.
      if (outcome?.kind === "published") {
        await withTimeout(this.commitProgress(), 1_000).catch((err: unknown) =>
          this.log.debug({ err: errorMessage(err) }, "Final commit to the consumer group skipped"),
        );
      }
    }
    this.ingestor.setLoopState("stopped");
  }

  // ------------------------------------------------------------------------------------------

  /** Subscribes, waits for the subscription to end, and subscribes again; sleeps while pinned. */
  private async run(): Promise<void> {
    while (!this.stopping) {
      if (this.ingestor.isPaused) {
        await new Promise<void>((resolve) => (this.wakeRunLoop = resolve));
        this.wakeRunLoop = null;
        continue;
      }
      // Batches of the last subscription first: the next one starts where they end.
      await this.applying;
      this.applyFailure = null; // what ended the last subscription, if anything
      const generation = this.ingestor.generation;
      let subscription: DeltaSubscription | null = null;
      try {
        subscription = await this.source.subscribe({
          topic: this.ingestor.topic,
          groupId: this.options.groupId,
          startAt: (partition) => this.ingestor.positionOf(partition),
          onBatch: (batch) => this.onBatch(batch, generation),
        });
        this.subscription = subscription;
        if (this.stopping || generation !== this.ingestor.generation) continue; // positions changed meanwhile
        this.ingestor.setLoopState("consuming");
        this.log.info({ generation }, "Consuming");
        await subscription.ended;
      } catch (err) {
        if (this.stopping) break;
        this.ingestor.noteSourceFailure(err);
        this.ingestor.setLoopState("retrying");
        const delayMs = this.sourceBackoff.next();
        this.log.warn(
          { err: errorMessage(err), retryInMs: delayMs },
          "Kafka source failed: subscribing again after a backoff",
        );
        await this.sleep(delayMs);
      } finally {
        this.subscription = null;
        await subscription?.stop().catch(() => undefined);
      }
    }
  }

  /**
   * Hands the batch to the decode pool and returns, so that Kafka is read on while it decodes;
   * waits only while {@link MAX_SLICES_IN_FLIGHT} slices are in flight. Slices are applied in the
   * order they were read. A failure to apply one rejects this call or the next, which ends the
   * subscription; it is made again after a backoff.
   */
  private async onBatch(batch: DeltaBatch, generation: number): Promise<void> {
    this.throwApplyFailure();
    const { messages } = batch;
    for (let at = 0; at < messages.length; at += DECODE_SLICE) {
      // A batch read from positions that have since been reloaded (pin, another publisher) is stale.
      if (this.stopping || generation !== this.ingestor.generation) return;
      const slice =
        messages.length <= DECODE_SLICE
          ? batch
          : { ...batch, messages: messages.slice(at, at + DECODE_SLICE) };
      this.enqueue(slice, generation);
      while (this.inFlight.length >= MAX_SLICES_IN_FLIGHT) await this.inFlight[0];
      this.throwApplyFailure();
    }
  }

  private enqueue(batch: DeltaBatch, generation: number): void {
    const decoded = this.options.decodePool?.decode(this.ingestor.table, batch.messages) ?? null;
    const applied = this.applying
      .then(async () => this.applyBatch(batch, await decoded, generation))
      .catch((err: unknown) => {
        this.applyFailure ??= err;
      })
      .finally(() => {
        // Not `() => this.inFlight.shift()`: finally would wait on the promise it returns, itself.
        this.inFlight.shift();
      });
    this.inFlight.push(applied);
    this.applying = applied;
  }

  private async applyBatch(
    batch: DeltaBatch,
    decoded: DecodedBatch | null,
    generation: number,
  ): Promise<void> {
    if (generation !== this.ingestor.generation) return; // reloaded while it was decoded
    this.ingestor.applyBatch(batch, decoded ?? undefined);
    this.sourceBackoff.reset();
    if (this.applyFailure !== null) return; // the subscription is ending: the tick sends and publishes
    // Rejects while the broker refuses dead letters: the subscription then ends and is made again
    // after a backoff, from positions past this batch; the dead letters wait in the outbox, and
    // no version includes their offsets until they are sent.
    await this.sendDeadLetters();
    if (this.ingestor.publishDue() && Date.now() >= this.publishRetryAtMs) await this.publishThenCommit();
  }

  private throwApplyFailure(): void {
    const failure = this.applyFailure;
    if (failure === null) return;
    this.applyFailure = null;
    throw failure;
  }

  private tick(): Promise<void> {
    if (this.ticking || this.stopping) return this.ticking ?? Promise.resolve();
    // Cleared in a `.finally` of the stored promise: a body that never awaits would otherwise
    // clear the field before it is even set.
    const ticking = this.tickOnce().finally(() => {
      if (this.ticking === ticking) this.ticking = null;
    });
    this.ticking = ticking;
    return ticking;
  }

  private async tickOnce(): Promise<void> {
    try {
      if (this.ingestor.isPaused) {
        await this.tryResume();
        return;
      }
      const outcome = this.ingestor.followTableState();
      if (outcome) {
        this.afterPublish(outcome);
        return;
      }
      if (this.ingestor.pendingDeadLetters > 0) await this.sendDeadLetters();
      if (this.ingestor.publishDue() && Date.now() >= this.publishRetryAtMs) await this.publishThenCommit();
    } catch (err) {
      this.ingestor.noteError(err);
      this.log.warn({ err: errorMessage(err) }, "Ingest tick failed");
    }
  }

  /**
   * The one place where ingest makes progress durable, in this order:
   *
   * 1. Dead letters first. A version records the offsets it includes, and a crash replays from
   *    them; an offset whose dead letter was not acknowledged must not be included, or a crash
   *    would lose the dead letter for good.
   * 2. Publish: the segment and manifest are durable and `current` is swapped. It is
   *    synchronous, so no batch is applied halfway through it.
   * 3. Only then commit the offsets to the consumer group. The group is for lag tools and never
   *    read back; committing before the version is durable would report as done offsets that a
   *    crash would take back.
   */
  private async publishThenCommit(): Promise<void> {
    await this.sendDeadLetters();
    const outcome = this.ingestor.publish();
    this.afterPublish(outcome);
    if (outcome.kind === "published")
      void this.commitProgress().catch((err: unknown) =>
        this.log.debug({ err: errorMessage(err) }, "Commit to the consumer group failed"),
      );
  }

  private afterPublish(outcome: PublishOutcome): void {
    switch (outcome.kind) {
      case "published":
        this.publishBackoff.reset();
        this.publishRetryAtMs = 0;
        this.announce(outcome.versions);
        return;
      case "failed":
        this.publishRetryAtMs = Date.now() + this.publishBackoff.next();
        return;
      case "pinned":
        this.log.info({}, "Table pinned: consuming stopped until resume");
        void this.subscription?.stop();
        return;
      case "moved":
        // Positions were reloaded: consume again from them.
        void this.subscription?.stop();
        return;
      case "blocked": // logged by the ingestor; consuming waits for a version of the config's schema
        void this.subscription?.stop();
        return;
      case "idle":
      case "waiting_for_dead_letters":
        return;
    }
  }

  private announce(versions: readonly Manifest[]): void {
    for (const m of versions) {
      this.log.debug({ version: m.version, reason: m.reason }, "Version published");
      try {
        this.options.onPublished?.(this.ingestor.table, m.version);
      } catch (err) {
        this.log.warn({ err: errorMessage(err) }, "onPublished callback failed");
      }
    }
  }

  private async tryResume(): Promise<void> {
    if (this.ingestor.isBlocked) {
      this.ingestor.retryBlocked();
      if (!this.ingestor.isPaused) this.wakeRunLoop?.();
      return;
    }
    const request = this.ingestor.resumeRequest();
    if (request === null) return;
    let latest: Map<number, bigint> | null = null;
    if (request === "latest") {
      const marks = await this.source.watermarks(this.ingestor.topic); // throws while the broker is away: tried again next tick
      latest = new Map(marks.map((m) => [m.partition, m.high]));
      this.ingestor.noteWatermarks(marks);
    }
    const outcome = this.ingestor.resumeAt(latest);
    this.afterPublish(outcome);
    if (outcome.kind === "published") void this.commitProgress().catch(() => undefined);
    if (!this.ingestor.isPaused) this.wakeRunLoop?.();
  }

  /** Sends the outbox's dead letters; one send at a time, repeated while more arrive. */
  private sendDeadLetters(): Promise<void> {
    if (this.deadLetterSend) return this.deadLetterSend;
    if (this.ingestor.pendingDeadLetters === 0) return Promise.resolve();
    const sending = (async () => {
      for (;;) {
        const letters = this.ingestor.takeDeadLetters();
        if (letters.length === 0) return;
        await this.producer.send(
          this.options.deadLetterTopic,
          letters.map((l) => l.message),
        );
        this.ingestor.acknowledgeDeadLetters(letters);
        this.log.debug({ count: letters.length, topic: this.options.deadLetterTopic }, "Dead letters sent");
      }
    })().finally(() => {
      if (this.deadLetterSend === sending) this.deadLetterSend = null;
    });
    this.deadLetterSend = sending;
    return sending;
  }

  private commitProgress(): Promise<void> {
    return this.source.commitProgress(
      this.options.groupId,
      this.ingestor.topic,
      new Map(this.ingestor.publishedPositions()),
    );
  }

  private async refreshWatermarks(): Promise<void> {
    try {
      this.ingestor.noteWatermarks(await this.source.watermarks(this.ingestor.topic));
    } catch {
      // The lag stays at what was last known; the subscription reports the outage.
    }
  }

  private sleep(ms: number): Promise<void> {
    return new Promise((resolve) => {
      const timer = setTimeout(resolve, ms);
      this.wakeRunLoop = () => {
        clearTimeout(timer);
        resolve();
      };
    });
  }
}

function withTimeout<T>(promise: Promise<T>, ms: number): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`Timed out after ${ms} ms`)), ms);
  });
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}
