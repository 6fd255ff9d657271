/** The fleet control layer's failure vocabulary (docs/fleet.md, docs/errors.md). */
import { StrataError } from "../shared/errors.js";

/**
 * A writer acted on a lease it no longer holds (expired before it could renew, or taken): the
 * publish is refused before it happens. Same code as the storage fence (WriterFencedError), which
 * refuses it again on disk if this check is ever bypassed.
 */
export class LeaseLostError extends StrataError {
  readonly code = "STRATA_WRITER_FENCED";
  constructor(
    readonly table: string,
    readonly epoch: number | null,
    detail: string,
  ) {
    super(
      `Cannot publish on table "${table}": this node does not hold the writer lease${epoch === null ? "" : ` (epoch ${epoch})`}: ${detail}`,
    );
  }
}

/** A fleet command's desired state is saved, but these live nodes did not serve the target in time. */
export class FleetIncompleteError extends StrataError {
  readonly code = "STRATA_FLEET_INCOMPLETE";
  constructor(
    readonly table: string,
    readonly target: number,
    readonly stragglers: readonly { node: string; serving: number | null; error: string | null }[],
    timeoutMs: number,
  ) {
    super(
      `Fleet did not converge on ${table} v${target} within ${timeoutMs} ms: ` +
        stragglers
          .map(
            (s) =>
              `node "${s.node}" serves ${s.serving ? `v${s.serving}` : "nothing"}${s.error ? ` (${s.error})` : ""}`,
          )
          .join(", ") +
        " (the desired state is saved: they apply it when they can)",
    );
  }
}
