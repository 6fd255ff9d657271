/**
 * One table's writer lease, held for as long as this process may publish the table: acquired
 * when free, renewed every third of the TTL, given up on stop. The timing rules are the pure
 * functions of lease.ts; this class runs them on timers against a CoordinationStore.
 *
 * `check()` is the publish gate: it throws LeaseLostError unless the lease is held and its local
 * deadline has not passed, so a writer that cannot renew (Redis away, a long pause) stops
 * publishing before a standby can take over. `epoch` is the fencing token that goes into each
 * manifest's `writer_epoch`.
 */
import { EventEmitter } from "node:events";
import { errorMessage } from "../shared/errors.js";
import type { Logger } from "../shared/logger.js";
import type { CoordinationStore, LeaseHolder } from "./coordination-store.js";
import { LeaseLostError } from "./errors.js";
import {
  STANDBY,
  heldAfter,
  leaseValid,
  nextLeaseAction,
  type LeaseState,
  type LeaseTiming,
} from "./lease.js";

export interface WriterLeaseEvents {
  acquired: [epoch: number];
  lost: [epoch: number, reason: string];
}

export class WriterLease extends EventEmitter<WriterLeaseEvents> {
  private state: LeaseState = STANDBY;
  private lastAttemptMs: number | null = null;
  private timer: NodeJS.Timeout | null = null;
  private running = false;
  private busy = false;
  private lastLoss: { epoch: number; reason: string } | null = null;

  constructor(
    private readonly store: CoordinationStore,
    readonly table: string,
    private readonly holder: LeaseHolder,
    private readonly timing: LeaseTiming,
    /** The highest epoch this node has seen on disk: no epoch at or below it is accepted. */
    private readonly minEpoch: () => number,
    private readonly log: Logger,
    private readonly now: () => number = Date.now,
  ) {
    super();
  }

  /** The epoch while the lease may be acted on, else null. */
  get epoch(): number | null {
    return leaseValid(this.state, this.now()) && this.state.kind === "held" ? this.state.epoch : null;
  }

  get held(): boolean {
    return this.epoch !== null;
  }

  /** Throws LeaseLostError unless this process may publish the table now. */
  check(): number {
    const epoch = this.epoch;
    if (epoch === null) {
      if (this.state.kind === "held") {
        throw new LeaseLostError(this.table, this.state.epoch, "it was not renewed before its deadline");
      }
      throw new LeaseLostError(
        this.table,
        this.lastLoss?.epoch ?? null,
        this.lastLoss?.reason ?? "another node holds it",
      );
    }
    return epoch;
  }

  start(): void {
    if (this.running) return;
    this.running = true;
    this.schedule(0);
  }

  /** Stops renewing; gives the lease up (so a standby takes over at once) when `release`. */
  async stop(release = true): Promise<void> {
    this.running = false;
    if (this.timer) clearTimeout(this.timer);
    this.timer = null;
    const state = this.state;
    this.state = STANDBY;
    if (state.kind === "held") {
      if (release) {
        await this.store
          .releaseLease(this.table, this.holder.holder, state.epoch)
          .catch((err: unknown) =>
            this.log.warn(
              { err: errorMessage(err) },
              "Cannot release the writer lease; it expires by itself",
            ),
          );
      }
      this.emit("lost", state.epoch, "stopped");
    }
  }

  /** Runs the next lease action now (tests; and a node that just reconnected to Redis). */
  async tick(): Promise<void> {
    if (this.busy || !this.running) return;
    this.busy = true;
    try {
      await this.step();
    } finally {
      this.busy = false;
    }
  }

  private schedule(delayMs: number): void {
    if (!this.running) return;
    if (this.timer) clearTimeout(this.timer);
    this.timer = setTimeout(
      () => {
        this.timer = null;
        void this.tick().finally(() => this.scheduleNext());
      },
      Math.max(0, delayMs),
    );
    this.timer.unref();
  }

  private scheduleNext(): void {
    const action = nextLeaseAction(this.state, this.now(), this.lastAttemptMs, this.timing);
    this.schedule(action.type === "wait" ? action.untilMs - this.now() : 0);
  }

  private async step(): Promise<void> {
    const action = nextLeaseAction(this.state, this.now(), this.lastAttemptMs, this.timing);
    switch (action.type) {
      case "wait":
        return;
      case "expire":
        this.lose(action.epoch, "not renewed before its deadline (Redis unreachable?)");
        return;
      case "acquire": {
        const sentAt = this.now();
        this.lastAttemptMs = sentAt;
        let epoch: number | null;
        try {
          epoch = await this.store.acquireLease(this.table, this.holder, this.timing.ttlMs, this.minEpoch());
        } catch (err) {
          this.log.debug({ err: errorMessage(err) }, "Cannot try the writer lease");
          return;
        }
        if (epoch === null || !this.running) return;
        this.state = heldAfter(epoch, sentAt, this.timing);
        this.lastLoss = null;
        this.log.info({ epoch }, "Writer lease acquired");
        this.emit("acquired", epoch);
        return;
      }
      case "renew": {
        const sentAt = this.now();
        this.lastAttemptMs = sentAt;
        let renewed: boolean;
        try {
          renewed = await this.store.renewLease(
            this.table,
            this.holder.holder,
            action.epoch,
            this.timing.ttlMs,
          );
        } catch (err) {
          // Still valid until its deadline: keep trying at the standby pace.
          this.log.warn({ epoch: action.epoch, err: errorMessage(err) }, "Cannot renew the writer lease");
          return;
        }
        if (this.state.kind !== "held" || this.state.epoch !== action.epoch) return;
        if (renewed) this.state = heldAfter(action.epoch, sentAt, this.timing);
        else this.lose(action.epoch, "taken by another node or expired in Redis");
        return;
      }
    }
  }

  private lose(epoch: number, reason: string): void {
    this.state = STANDBY;
    this.lastAttemptMs = null;
    this.lastLoss = { epoch, reason };
    this.log.warn({ epoch, reason }, "Writer lease lost");
    this.emit("lost", epoch, reason);
  }
}
