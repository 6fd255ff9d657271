/**
 * The body of a delta event once parsed from JSON or protobuf, before the key and event time are
 * settled against the Kafka message (delta-event.ts does that).
 */
import type { FeatureValue } from "../format/schema.js";

export interface DeltaBody {
  op: "upsert" | "delete";
  /** The key the body names, if any. */
  key: string | undefined;
  /** Upsert: one entry per feature in schema order, undefined = not carried. Delete: null. */
  features: (FeatureValue | undefined)[] | null;
  /** Number of features the upsert carries. */
  carried: number;
  eventTimeMs: number | undefined;
  /** The table the body names, if any. */
  table: string | undefined;
}
