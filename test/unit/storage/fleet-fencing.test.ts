// TableStore's fleet additions: the writer-epoch fence on publish, installing a manifest received
// from the writer (same bytes, same version number), follow() and discardVersion().
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { copyFileSync, mkdtempSync, readFileSync, readlinkSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { TableStore } from "../../../src/storage/table-store.js";
import { VersionWriter, type RowChange } from "../../../src/storage/version-writer.js";
import { WriterFencedError } from "../../../src/storage/errors.js";
import { StrataError } from "../../../src/shared/errors.js";
import type { TableSchema } from "../../../src/format/schema.js";

const schema: TableSchema = {
  name: "users",
  key: "user_id",
  topic: "strata.deltas.users",
  maxAgeMs: 0,
  features: [{ name: "age", type: "int64" }],
};

const row = (key: string, age: number): RowChange => ({ key, eventTimeMs: 1000, values: [BigInt(age)] });
async function* once(rows: RowChange[]): AsyncGenerator<RowChange[]> {
  yield rows;
}

describe("TableStore fleet fencing and installs", () => {
  let root: string;
  let store: TableStore;
  let writer: VersionWriter;
  beforeEach(async () => {
    root = mkdtempSync(join(tmpdir(), "strata-fence-"));
    store = new TableStore(join(root, "a"), "users");
    writer = new VersionWriter(store, schema);
    await writer.importRows(once([row("k", 1)]));
  });
  afterEach(() => rmSync(root, { recursive: true, force: true }));

  it("publish() refuses a writer epoch below the highest already published", () => {
    writer.publishDelta([row("k", 2)], null, 1, 3);
    expect(store.readState().max_writer_epoch).toBe(3);
    let refused: unknown;
    try {
      writer.publishDelta([row("k", 3)], null, 2, 2);
    } catch (err) {
      refused = err;
    }
    expect(refused).toBeInstanceOf(WriterFencedError);
    expect(refused).toMatchObject({ code: "STRATA_WRITER_FENCED", writerEpoch: 2, highestEpoch: 3 });
    expect((refused as StrataError).message).toBe(
      'Cannot publish on table "users": writer epoch 2 is below epoch 3, already published (this writer lost its lease)',
    );
    expect(store.currentVersion()).toBe(2);
    expect(store.listVersions()).toEqual([1, 2]);
    // The same epoch and a higher one publish; epoch 0 (a CLI import on one host) is not fenced.
    expect(writer.publishDelta([row("k", 4)], null, 2, 3).version).toBe(3);
    expect(writer.publishDelta([row("k", 5)], null, 3, 4).version).toBe(4);
    expect(writer.publishDelta([row("k", 6)], null, 4, 0).version).toBe(5);
  });

  it("the fence survives retention deleting the manifests that raised it", () => {
    writer.publishDelta([row("k", 2)], null, 1, 7);
    writer.publishDelta([row("k", 3)], null, 2, 0);
    store.gc(1);
    expect(store.listVersions()).toEqual([3]);
    expect(() => writer.publishDelta([row("k", 4)], null, 3, 6)).toThrow(WriterFencedError);
  });

  it("noteWriterEpoch() raises the fence from a lease seen in the fleet, never lowers it", () => {
    store.noteWriterEpoch(4);
    store.noteWriterEpoch(2);
    expect(store.readState().max_writer_epoch).toBe(4);
    expect(() => writer.publishDelta([row("k", 2)], null, 1, 3)).toThrow(WriterFencedError);
    expect(writer.publishDelta([row("k", 2)], null, 1, 4).version).toBe(2);
  });

  it("installManifest() installs the writer's exact bytes under its number, without moving current", () => {
    writer.publishDelta([row("k", 2)], null, 1, 5);
    const follower = new TableStore(join(root, "b"), "users");
    follower.ensureLayout();
    const m2 = store.readManifest(2);
    for (const s of m2.manifest.segments)
      copyFileSync(store.segmentPath(s.uuid), follower.segmentPath(s.uuid));
    const bytes = readFileSync(m2.path);
    const installed = follower.installManifest(bytes);
    expect(installed.sha256).toBe(m2.sha256);
    expect(readFileSync(follower.manifestPath(2))).toEqual(bytes);
    expect(follower.listVersions()).toEqual([2]);
    expect(follower.currentVersion()).toBeNull();
    expect(follower.readState().max_writer_epoch).toBe(5);
    // Idempotent with the same bytes.
    expect(follower.installManifest(bytes).sha256).toBe(m2.sha256);
    // An older version from an earlier epoch is legitimate (a rollback target): installed.
    for (const s of store.readManifest(1).manifest.segments)
      copyFileSync(store.segmentPath(s.uuid), follower.segmentPath(s.uuid));
    follower.installManifest(readFileSync(store.manifestPath(1)));
    expect(follower.listVersions()).toEqual([1, 2]);
  });

  it("installManifest() refuses missing segments and another manifest under the same number", async () => {
    const follower = new TableStore(join(root, "b"), "users");
    follower.ensureLayout();
    expect(() => follower.installManifest(readFileSync(store.manifestPath(1)))).toThrow(/is missing/);
    const other = new VersionWriter(follower, schema);
    await other.importRows(once([row("x", 9)]));
    for (const s of store.readManifest(1).manifest.segments)
      copyFileSync(store.segmentPath(s.uuid), follower.segmentPath(s.uuid));
    expect(() => follower.installManifest(readFileSync(store.manifestPath(1)))).toThrow(
      /another manifest with that number/,
    );
  });

  it("follow() moves current and sets the pin the fleet asks for, verifying first", async () => {
    for (let v = 2; v <= 4; v++) writer.publishDelta([row("k", v)], null, v - 1);
    const verified: number[] = [];
    const verify = (v: number): void => void verified.push(v);
    let r = store.follow(2, { pinned: true, rolledBack: [3, 4], resumeFrom: "version", verify });
    expect(r).toEqual({ from: 4, to: 2, changed: true });
    expect(readlinkSync(store.currentLink)).toBe("versions/v00000002");
    expect(store.readState()).toMatchObject({ pinned: true, pinned_version: 2, rolled_back: [3, 4] });
    expect(verified).toEqual([2]);
    // Nothing to do: no verification, no write.
    r = store.follow(2, { pinned: true, rolledBack: [3, 4], resumeFrom: "version", verify });
    expect(r.changed).toBe(false);
    expect(verified).toEqual([2]);
    // Unpinning passes resume_from to the ingestor; a publish numbers above the rolled-back ones.
    store.follow(2, { pinned: false, rolledBack: [], resumeFrom: "latest", verify });
    expect(store.readState()).toMatchObject({ pinned: false, resume_from: "latest", rolled_back: [3, 4] });
    expect(writer.publishDelta([row("k", 9)], null, 2).version).toBe(5);
    // Following a rolled-back version clears its mark.
    store.follow(4, { pinned: false, rolledBack: [], resumeFrom: "version", verify });
    expect(store.readState().rolled_back).toEqual([3]);
    expect(() => store.follow(42, { pinned: false, rolledBack: [], resumeFrom: "version", verify })).toThrow(
      /not retained/,
    );
  });

  it("markRolledBack() reserves numbers without moving current; the next publish numbers above", () => {
    store.markRolledBack([7, 5]);
    expect(store.readState().rolled_back).toEqual([5, 7]);
    expect(store.currentVersion()).toBe(1);
    expect(writer.publishDelta([row("k", 2)], null, 1).version).toBe(8);
  });

  it("discardVersion() removes a version that is not current", () => {
    writer.publishDelta([row("k", 2)], null, 1);
    expect(() => store.discardVersion(2)).toThrow(/it is current/);
    store.discardVersion(1);
    expect(store.listVersions()).toEqual([2]);
    store.discardVersion(1); // already gone: nothing to do
  });
});
