/**
 * Writer lease timing, as pure functions of the clock (no Redis, no timers): when to acquire,
 * when to renew, and until when a held lease may be trusted.
 *
 * The holder trusts its lease until `sentAtMs + ttlMs - driftMs`, where `sentAtMs` is when it
 * *sent* the request that set the expiry. Redis starts the TTL when it executes the command,
 * which is after the send, so the holder's own deadline always falls before the key can expire
 * and a standby can take it: at any instant at most one process believes it holds the lease, as
 * long as clocks advance at about the same rate (`driftMs` absorbs the difference, as in
 * Redlock's validity time). Renewals go out every `renewEveryMs` (a third of the TTL), so two
 * renewals can fail before the lease is lost. A standby tries to acquire every `acquireEveryMs`,
 * so it takes over at most `ttlMs + acquireEveryMs` after the holder's last renewal.
 */

export interface LeaseTiming {
  readonly ttlMs: number;
  /** How often the holder renews. */
  readonly renewEveryMs: number;
  /** How often a standby tries to take the lease. */
  readonly acquireEveryMs: number;
  /** Subtracted from the holder's deadline for clock rate differences and scheduling delays. */
  readonly driftMs: number;
}

/** The timing used for a TTL: renew every third, try to acquire every tenth, 5% (≥ 20 ms) drift. */
export function leaseTiming(ttlMs: number): LeaseTiming {
  if (!Number.isFinite(ttlMs) || ttlMs < 300)
    throw new RangeError(`Lease TTL must be at least 300 ms (got ${ttlMs})`);
  return {
    ttlMs,
    renewEveryMs: Math.floor(ttlMs / 3),
    acquireEveryMs: Math.max(50, Math.floor(ttlMs / 10)),
    driftMs: Math.max(20, Math.floor(ttlMs * 0.05)),
  };
}

export type LeaseState =
  | { readonly kind: "standby" }
  | {
      readonly kind: "held";
      readonly epoch: number;
      /** The holder may act on the lease strictly before this instant. */
      readonly validUntilMs: number;
      /** When the last successful acquire or renew was sent. */
      readonly renewedAtMs: number;
    };

export const STANDBY: LeaseState = { kind: "standby" };

/** The state after an acquire or renew sent at `sentAtMs` succeeded. */
export function heldAfter(epoch: number, sentAtMs: number, timing: LeaseTiming): LeaseState {
  return {
    kind: "held",
    epoch,
    validUntilMs: sentAtMs + timing.ttlMs - timing.driftMs,
    renewedAtMs: sentAtMs,
  };
}

/** True while the holder may publish: held, and the local deadline not passed. */
export function leaseValid(state: LeaseState, nowMs: number): boolean {
  return state.kind === "held" && nowMs < state.validUntilMs;
}

export type LeaseAction =
  | { readonly type: "acquire" }
  | { readonly type: "renew"; readonly epoch: number }
  /** The local deadline passed without a renewal: stop acting as the writer. */
  | { readonly type: "expire"; readonly epoch: number }
  | { readonly type: "wait"; readonly untilMs: number };

/**
 * What to do at `nowMs`. `lastAttemptMs` is when the last acquire or renew was tried (successful
 * or not), so failed attempts are retried at the same pace instead of in a tight loop.
 */
export function nextLeaseAction(
  state: LeaseState,
  nowMs: number,
  lastAttemptMs: number | null,
  timing: LeaseTiming,
): LeaseAction {
  if (state.kind === "standby") {
    const due = lastAttemptMs === null ? nowMs : lastAttemptMs + timing.acquireEveryMs;
    return nowMs >= due ? { type: "acquire" } : { type: "wait", untilMs: due };
  }
  if (nowMs >= state.validUntilMs) return { type: "expire", epoch: state.epoch };
  const renewDue = state.renewedAtMs + timing.renewEveryMs;
  // After a failed renewal, retry at the standby pace until the deadline.
  const retryDue =
    lastAttemptMs === null ? renewDue : Math.max(renewDue, lastAttemptMs + timing.acquireEveryMs);
  const due = Math.min(retryDue, state.validUntilMs);
  if (nowMs >= due) return { type: "renew", epoch: state.epoch };
  return { type: "wait", untilMs: due };
}
