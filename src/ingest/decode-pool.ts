/**
 * Decoding delta batches off the event loop. JSON.parse and the schema checks are a third of
 * ingest's CPU; in a worker thread they run beside the main thread, which meanwhile reads the
 * next batch from Kafka, merges and writes segments (docs/decisions.md 15).
 *
 * The pool is an optimisation, never a dependency: `decode` resolves null when there is no
 * worker, and the caller then decodes the batch itself. There is none when Strata runs from its
 * TypeScript sources (vitest: a worker cannot load a .ts module), and none after the worker died
 * (logged once; its batches in flight are handed back the same way). Decoding never throws on
 * input (decoded-batch.ts), so a worker dies only of a bug or an out-of-memory.
 */
import { Worker } from "node:worker_threads";
import type { TableSchema } from "../format/schema.js";
import type { Logger } from "../shared/logger.js";
import { errorMessage } from "../shared/errors.js";
import { packMessages, transferablesOf, type DecodedBatch } from "./decoded-batch.js";
import {
  DECODE_WORKER_ROLE,
  DECODE_WORKER_URL,
  type DecodeRequest,
  type DecodeWorkerData,
} from "./decode-worker.js";
import type { DeltaMessage } from "./delta-source.js";
import type { DeltaLimits } from "./feature-coercion.js";

export class DecodePool {
  private worker: Worker | null = null;
  private nextId = 0;
  private readonly waiting = new Map<number, (decoded: DecodedBatch | null) => void>();

  /** Starts the worker (unless running from sources, or `enabled` is false). */
  constructor(
    tables: readonly TableSchema[],
    limits: DeltaLimits,
    private readonly log: Logger,
    enabled = true,
  ) {
    if (!enabled || !DECODE_WORKER_URL.pathname.endsWith(".js")) return;
    const workerData: DecodeWorkerData = { role: DECODE_WORKER_ROLE, tables, limits };
    const worker = new Worker(DECODE_WORKER_URL, { workerData });
    worker.on("message", (m: { id: number; decoded?: DecodedBatch; error?: string }) => {
      if (m.error !== undefined) this.log.error({ err: m.error }, "Decode worker refused a batch");
      this.settle(m.id, m.decoded ?? null);
    });
    worker.on("error", (err) => this.lose(`failed: ${errorMessage(err)}`));
    worker.on("exit", (code) => this.lose(`exited with code ${code}`));
    worker.unref();
    this.worker = worker;
  }

  /** The batch decoded in the worker, or null: decode it yourself. */
  decode(table: string, messages: readonly DeltaMessage[]): Promise<DecodedBatch | null> {
    const worker = this.worker;
    if (!worker) return Promise.resolve(null);
    const id = this.nextId++;
    const packed = packMessages(messages);
    return new Promise((resolve) => {
      this.waiting.set(id, resolve);
      const request: DecodeRequest = { id, table, packed };
      worker.postMessage(request, transferablesOf(packed));
    });
  }

  async close(): Promise<void> {
    const worker = this.worker;
    this.worker = null;
    this.handBack();
    if (worker) await worker.terminate();
  }

  private settle(id: number, decoded: DecodedBatch | null): void {
    const resolve = this.waiting.get(id);
    this.waiting.delete(id);
    resolve?.(decoded);
  }

  private lose(why: string): void {
    if (!this.worker) return;
    this.worker = null;
    this.log.error({}, `Decode worker ${why}: decoding on the main thread from now on`);
    this.handBack();
  }

  /** Batches in flight go back to their callers undecoded. */
  private handBack(): void {
    for (const resolve of this.waiting.values()) resolve(null);
    this.waiting.clear();
  }
}
