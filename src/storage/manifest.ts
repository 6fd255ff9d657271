/**
 * The MANIFEST of a version: its commit point. JSON, written once (tmp + fsync + rename).
 *
 *   {"format":1,"table":"users","version":42,"parent":41,"parent_sha256":"…","reason":"ingest",
 *    "created_at_ms":…,"schema_hash":"…","schema":{"key":"user_id","features":[…]},
 *    "segments":[{"uuid":"…","kind":"base","size":…,"header_crc32":…,"body_crc32":…,
 *                 "records":…,"tombstones":…,"min_event_time_ms":…,"max_event_time_ms":…}, …],
 *    "kafka":{"topic":"…","offsets":{"0":"1234"}},"writer_epoch":0}
 *
 * Segments are in lookup order reversed: base part(s) first, then deltas oldest to newest; a
 * lookup probes from the last. `parent_sha256` is the SHA-256 of the parent's MANIFEST bytes, so
 * the chain of versions is tamper-evident. Kafka offsets are the next offset to read per partition.
 */
import { createHash } from "node:crypto";
import type { FeatureSpec } from "../format/schema.js";
import { ManifestCorruptError } from "./errors.js";

export const MANIFEST_FORMAT = 1;

export type VersionReason = "import" | "ingest" | "compact" | "restore";

export interface SegmentEntry {
  uuid: string;
  kind: "base" | "delta";
  size: number;
  header_crc32: number;
  body_crc32: number;
  records: number;
  tombstones: number;
  min_event_time_ms: number;
  max_event_time_ms: number;
}

export interface KafkaPosition {
  topic: string;
  /** Partition → next offset to read, as a decimal string (Kafka offsets are 64-bit). */
  offsets: Record<string, string>;
}

export interface Manifest {
  format: number;
  table: string;
  version: number;
  parent: number | null;
  parent_sha256: string | null;
  reason: VersionReason;
  created_at_ms: number;
  schema_hash: string;
  schema: { key: string; features: FeatureSpec[] };
  segments: SegmentEntry[];
  kafka: KafkaPosition | null;
  /** Fencing token of the writer that published it (fleet writer lease); 0 on a single host. */
  writer_epoch: number;
}

export function encodeManifest(m: Manifest): Buffer {
  return Buffer.from(JSON.stringify(m, null, 2) + "\n", "utf8");
}

export function sha256(bytes: Uint8Array): string {
  return createHash("sha256").update(bytes).digest("hex");
}

/** Parses and checks a MANIFEST's bytes; `path` names it in errors. */
export function decodeManifest(bytes: Buffer, path: string): Manifest {
  const fail = (detail: string): never => {
    throw new ManifestCorruptError(`Manifest is corrupt: ${detail}: "${path}"`, path);
  };
  let m: Manifest;
  try {
    m = JSON.parse(bytes.toString("utf8")) as Manifest;
  } catch {
    return fail("not valid JSON");
  }
  if (typeof m !== "object" || m === null) fail("not an object");
  if (m.format !== MANIFEST_FORMAT) fail(`format ${String(m.format)}`);
  if (typeof m.table !== "string") fail("table");
  if (!isCount(m.version) || m.version < 1) fail("version");
  if (m.parent !== null && (!isCount(m.parent) || m.parent >= m.version)) fail("parent");
  if (m.parent_sha256 !== null && !/^[0-9a-f]{64}$/.test(String(m.parent_sha256))) fail("parent_sha256");
  if (!["import", "ingest", "compact", "restore"].includes(m.reason)) fail("reason");
  if (
    typeof m.schema_hash !== "string" ||
    typeof m.schema?.key !== "string" ||
    !Array.isArray(m.schema.features)
  )
    fail("schema");
  for (const f of m.schema.features) {
    if (typeof f?.name !== "string" || typeof f.type !== "string") fail("schema feature");
  }
  if (!Array.isArray(m.segments) || m.segments.length === 0) fail("segments");
  for (const s of m.segments) {
    if (!/^[0-9a-f]{32}$/.test(String(s?.uuid))) fail("segment uuid");
    if (s.kind !== "base" && s.kind !== "delta") fail("segment kind");
    if (!isCount(s.size) || !isCount(s.header_crc32) || !isCount(s.body_crc32) || !isCount(s.records))
      fail(`segment ${s.uuid} sizes`);
  }
  if (m.kafka !== null && (typeof m.kafka?.topic !== "string" || typeof m.kafka.offsets !== "object"))
    fail("kafka");
  if (!isCount(m.writer_epoch)) fail("writer_epoch");
  return m;
}

function isCount(n: unknown): n is number {
  return typeof n === "number" && Number.isSafeInteger(n) && n >= 0;
}
