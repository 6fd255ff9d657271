/**
 * diffVersions against a model: two versions' rows read with the JS reference scan and compared
 * in JS, over a base of several parts and deltas with updates, deletes and rewrites of the same
 * values at a later time; a compaction and a rewrite in a new schema change nothing.
 */
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { isDeepStrictEqual } from "node:util";
import { TableStore } from "../../../src/storage/table-store.js";
import { VersionWriter, type RowChange } from "../../../src/storage/version-writer.js";
import { MappedSegmentCache } from "../../../src/storage/mapped-segment.js";
import { openSnapshot } from "../../../src/storage/version-snapshot.js";
import { diffVersions } from "../../../src/storage/version-diff.js";
import type { TableSchema } from "../../../src/format/schema.js";
import { usersSchema } from "../../helpers/schemas.js";
import { prng } from "../../helpers/prng.js";

const schema = usersSchema;
const withScore: TableSchema = {
  ...schema,
  features: [...schema.features, { name: "score", type: "float64" }],
};

describe("diffVersions", () => {
  let root: string;
  let store: TableStore;
  beforeEach(() => {
    root = mkdtempSync(join(tmpdir(), "strata-diff-"));
    store = new TableStore(root, "users");
  });
  afterEach(() => rmSync(root, { recursive: true, force: true }));

  const open = (version: number, reader = schema) =>
    openSnapshot(store, new MappedSegmentCache(), version, { verify: true, schema: reader });
  /** key → values, by the JS reference scan. */
  const rowsOf = (version: number) => {
    const snapshot = open(version);
    const rows = new Map<string, unknown>();
    for (const { key, location } of snapshot.scan()) rows.set(key, snapshot.decode(location));
    return rows;
  };

  it("counts what a model of the two versions counts, between any two of them", async () => {
    const next = prng(11);
    const writer = new VersionWriter(store, schema);
    const value = (): RowChange["values"] => {
      const n = Math.floor(next() * 5);
      return [BigInt(n), new Float32Array([n, -n]), next() < 0.2 ? null : `c${n}`];
    };
    async function* base(): AsyncGenerator<RowChange[]> {
      yield Array.from({ length: 400 }, (_, i) => ({ key: `k${i}`, eventTimeMs: 1, values: value() }));
    }
    await writer.importRows(base(), { maxSegmentBytes: 8192 });
    let t = 2;
    for (let d = 0; d < 6; d++) {
      const changes = new Map<string, RowChange>();
      for (let i = 0; i < 60; i++) {
        const key = `k${Math.floor(next() * 500)}`; // some new, some deleted, some the same values again
        changes.set(
          key,
          next() < 0.2 ? { key, eventTimeMs: t++, values: null } : { key, eventTimeMs: t++, values: value() },
        );
      }
      writer.publishDelta(changes.values(), null, store.requireCurrentVersion());
    }
    const last = store.requireCurrentVersion();
    for (const [from, to] of [
      [1, last],
      [1, 2],
      [3, 5],
      [last, 1],
    ] as const) {
      const a = rowsOf(from);
      const b = rowsOf(to);
      const added = [...b.keys()].filter((k) => !a.has(k));
      const removed = [...a.keys()].filter((k) => !b.has(k));
      const changed = [...b.keys()].filter((k) => a.has(k) && !isDeepStrictEqual(a.get(k), b.get(k)));
      const d = diffVersions(open(from), open(to), 1000);
      expect(d).toMatchObject({
        from,
        to,
        added: added.length,
        removed: removed.length,
        changed: changed.length,
        unchanged: b.size - added.length - changed.length,
        damaged: 0,
      });
      expect(new Set(d.samples.added)).toEqual(new Set(added));
      expect(new Set(d.samples.removed)).toEqual(new Set(removed));
      expect(new Set(d.samples.changed)).toEqual(new Set(changed));
      expect(changed.length).toBeGreaterThan(0);
    }
    // At most `sampleKeys` keys of each kind.
    expect(diffVersions(open(1), open(last), 2).samples.changed).toHaveLength(2);
  });

  it("finds nothing changed by a compaction, or by a rewrite in a schema with a feature more", async () => {
    const next = prng(5);
    async function* rows(): AsyncGenerator<RowChange[]> {
      yield Array.from({ length: 300 }, (_, i) => ({
        key: `k${i}`,
        eventTimeMs: 1,
        values: [BigInt(i), new Float32Array([next(), next()]), i % 3 === 0 ? null : `city${i}`],
      }));
    }
    const writer = new VersionWriter(store, schema);
    await writer.importRows(rows());
    writer.publishDelta(
      [{ key: "k7", eventTimeMs: 5, values: [7n, new Float32Array([1, 2]), "x"] }],
      null,
      1,
    );
    const compacted = writer.compact().version;
    expect(diffVersions(open(2), open(compacted))).toMatchObject({
      changed: 0,
      added: 0,
      removed: 0,
      unchanged: 300,
    });
    // The config gains `score`: compact writes the rows in the new schema (score null).
    const rewritten = new VersionWriter(store, withScore).compact().version;
    expect(open(rewritten, withScore).manifest.schema_hash).not.toBe(open(compacted).manifest.schema_hash);
    expect(diffVersions(open(compacted, withScore), open(rewritten, withScore))).toMatchObject({
      changed: 0,
      unchanged: 300,
    });
  });
});
