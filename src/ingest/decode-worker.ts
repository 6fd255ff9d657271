/**
 * The decode worker's side of decode-pool.ts: packed messages in, decoded rows out, for the
 * tables it was started with. Loaded as a module by the pool too (for its URL), where it does
 * nothing.
 */
import { isMainThread, parentPort, workerData } from "node:worker_threads";
import type { TableSchema } from "../format/schema.js";
import { rowLayout, type RowLayout } from "../format/row-layout.js";
import { decodeBatch, transferablesOf, unpackMessages, type PackedMessages } from "./decoded-batch.js";
import { DeltaDecoder } from "./delta-event.js";
import type { DeltaLimits } from "./feature-coercion.js";

export const DECODE_WORKER_URL = new URL(import.meta.url);
export const DECODE_WORKER_ROLE = "strata-delta-decode";

export interface DecodeWorkerData {
  readonly role: typeof DECODE_WORKER_ROLE;
  readonly tables: readonly TableSchema[];
  readonly limits: DeltaLimits;
}

export interface DecodeRequest {
  readonly id: number;
  readonly table: string;
  readonly packed: PackedMessages;
}

if (!isMainThread && (workerData as Partial<DecodeWorkerData> | null)?.role === DECODE_WORKER_ROLE) {
  const data = workerData as DecodeWorkerData;
  const decoders = new Map<string, { decoder: DeltaDecoder; layout: RowLayout }>(
    data.tables.map((t) => [t.name, { decoder: new DeltaDecoder(t, data.limits), layout: rowLayout(t) }]),
  );
  parentPort!.on("message", ({ id, table, packed }: DecodeRequest) => {
    const d = decoders.get(table);
    if (!d) {
      parentPort!.postMessage({ id, error: `No decoder for table "${table}"` });
      return;
    }
    const decoded = decodeBatch(d.decoder, d.layout, unpackMessages(packed));
    parentPort!.postMessage({ id, decoded }, transferablesOf(decoded));
  });
}
