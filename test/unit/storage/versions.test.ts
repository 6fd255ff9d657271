import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { mkdtempSync, readFileSync, readdirSync, readlinkSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { TableStore } from "../../../src/storage/table-store.js";
import { VersionWriter, type RowChange } from "../../../src/storage/version-writer.js";
import { MappedSegmentCache } from "../../../src/storage/mapped-segment.js";
import { openSnapshot } from "../../../src/storage/version-snapshot.js";
import { verifyVersions } from "../../../src/storage/version-verify.js";
import { usersSchema } from "../../helpers/schemas.js";

const schema = usersSchema;

async function* batches(rows: RowChange[]): AsyncGenerator<RowChange[]> {
  for (let i = 0; i < rows.length; i += 100) yield rows.slice(i, i + 100);
}
const user = (i: number, age = i): RowChange => ({
  key: `u${i}`,
  eventTimeMs: 1000 + i,
  values: [BigInt(age), new Float32Array([i, -i]), `c${i % 7}`],
});

describe("versions on disk", () => {
  let root: string;
  let store: TableStore;
  let writer: VersionWriter;
  beforeEach(() => {
    root = mkdtempSync(join(tmpdir(), "strata-"));
    store = new TableStore(root, "users");
    writer = new VersionWriter(store, schema);
  });
  afterEach(() => rmSync(root, { recursive: true, force: true }));

  const get = (key: string, version = store.requireCurrentVersion()) =>
    openSnapshot(store, new MappedSegmentCache(), version, { verify: true }).get(key);

  it("refuses to publish a version whose segment another process's gc removed, and publishes nothing", async () => {
    const m1 = await writer.importRows(batches([user(1)]));
    const gone = { ...m1.segments[0]!, uuid: "0".repeat(32) };
    const { reason, schema_hash, schema, kafka, writer_epoch } = m1;
    const draft = { reason, schema_hash, schema, kafka, writer_epoch, segments: [gone] };
    expect(() => store.publish(draft)).toThrow(/segment ".*0{32}\.seg" is gone .*nothing was published/);
    expect(store.listVersions()).toEqual([1]);
    expect(store.currentVersion()).toBe(1);
  });

  it("imports a base, publishes deltas, reads newest first", async () => {
    const m1 = await writer.importRows(batches(Array.from({ length: 1000 }, (_, i) => user(i))));
    expect(m1.version).toBe(1);
    expect(readlinkSync(join(root, "users", "current"))).toBe("versions/v00000001");
    const m2 = writer.publishDelta(
      [user(5, 99), { key: "u6", eventTimeMs: 2000, values: null }, user(5000)],
      null,
      1,
    );
    expect(m2.version).toBe(2);
    expect(m2.parent).toBe(1);
    expect(m2.segments.map((s) => s.kind)).toEqual(["base", "delta"]);
    expect(m2.segments[0]!.uuid).toBe(m1.segments[0]!.uuid);
    expect(get("u5").values).toEqual([99n, new Float32Array([5, -5]), "c5"]);
    expect(get("u6").status).toBe("absent");
    expect(get("u5000").status).toBe("found");
    expect(get("u7").values?.[0]).toBe(7n);
    expect(get("u5", 1).values?.[0]).toBe(5n);
    expect(verifyVersions(store, [1, 2]).problems).toEqual([]);
  });

  it("splits a base into parts under the size limit", async () => {
    await writer.importRows(batches(Array.from({ length: 3000 }, (_, i) => user(i))), {
      maxSegmentBytes: 64 * 1024,
    });
    const m = store.readManifest(1).manifest;
    expect(m.segments.length).toBeGreaterThan(2);
    for (const i of [0, 1500, 2999]) expect(get(`u${i}`).values?.[0]).toBe(BigInt(i));
  });

  it("rolls back, pins, refuses publishes until resume, never re-promotes silently", async () => {
    await writer.importRows(batches([user(1)]));
    for (let v = 2; v <= 4; v++) writer.publishDelta([user(1, v * 10)], null, v - 1);
    const r = store.rollback({ verify: () => {} });
    expect(r).toEqual({ from: 4, to: 3 });
    expect(get("u1").values?.[0]).toBe(30n);
    expect(store.readState()).toMatchObject({ pinned: true, pinned_version: 3, rolled_back: [4] });
    expect(() => writer.publishDelta([user(1, 1)], null, 3)).toThrow(/pinned/);
    expect(() => store.rollback({ to: 4, verify: () => {} })).toThrow(/rolled back/);
    store.rollback({ to: 1, verify: () => {} });
    expect(store.readState().rolled_back).toEqual([2, 3, 4]);
    store.resume();
    const m = writer.publishDelta([user(1, 77)], null, 1);
    expect(m.version).toBe(5);
    expect(m.parent).toBe(1);
    expect(store.rollback({ to: 4, force: true, verify: () => {} })).toEqual({ from: 5, to: 4 });
  });

  it("an import into a pinned table is refused before it writes, and one pinned meanwhile leaves no file", async () => {
    await writer.importRows(batches([user(1)]));
    const files = () => readdirSync(store.dataDir).sort();
    const before = files();
    store.pin();
    await expect(writer.importRows(batches([user(2)]))).rejects.toThrow(/is pinned at version 1/);
    expect(files()).toEqual(before);
    store.resume();
    // Pinned while its rows were read: the parts it wrote go with the refusal.
    async function* pinnedMidway(): AsyncGenerator<RowChange[]> {
      yield [user(3)];
      store.pin();
      yield [user(4)];
    }
    await expect(writer.importRows(pinnedMidway())).rejects.toThrow(/is pinned at version 1/);
    expect(files()).toEqual(before);
    expect(store.listVersions()).toEqual([1]);
  });

  it("refuses a state file that does not parse, naming it, instead of reading it as unpinned", async () => {
    await writer.importRows(batches([user(1)]));
    store.pin();
    writeFileSync(store.statePath, '{"pinned": tr');
    expect(() => store.readState()).toThrow(
      /Table state ".*state\.json" is corrupt .*restore it, or remove it/,
    );
    await expect(writer.importRows(batches([user(2)]))).rejects.toThrow(/state\.json" is corrupt/);
    expect(() => store.gc(1)).toThrow(/state\.json" is corrupt/);
    expect(store.listVersions()).toEqual([1]);
    rmSync(store.statePath);
    expect(store.readState()).toEqual(store.emptyState());
  });

  it("gc keeps the newest versions, current and pinned, and deletes unreferenced segments", async () => {
    await writer.importRows(batches([user(1)]));
    for (let v = 2; v <= 6; v++) writer.publishDelta([user(v)], null, v - 1);
    writer.compact();
    expect(store.currentVersion()).toBe(7);
    const { versions } = store.gc(2);
    expect(versions).toEqual([1, 2, 3, 4, 5]);
    expect(store.listVersions()).toEqual([6, 7]);
    const segs = readdirSync(join(root, "users", "data"));
    const referenced = new Set(
      [6, 7].flatMap((v) => store.readManifest(v).manifest.segments.map((s) => `${s.uuid}.seg`)),
    );
    expect(new Set(segs)).toEqual(referenced);
    for (let v = 1; v <= 6; v++) expect(get(`u${v}`).status).toBe("found");
  });

  it("compaction drops tombstones and shadowed rows", async () => {
    await writer.importRows(batches([user(1), user(2)]));
    writer.publishDelta([{ key: "u1", eventTimeMs: 5, values: null }, user(2, 20)], null, 1);
    const m = writer.compact();
    expect(m.segments).toHaveLength(1);
    expect(m.segments[0]).toMatchObject({ kind: "base", records: 1, tombstones: 0 });
    expect(get("u1").status).toBe("absent");
    expect(get("u2").values?.[0]).toBe(20n);
  });

  it("verify names a damaged segment and a broken manifest chain", async () => {
    await writer.importRows(batches([user(1), user(2)]));
    writer.publishDelta([user(3)], null, 1);
    const seg = join(store.dataDir, `${store.readManifest(1).manifest.segments[0]!.uuid}.seg`);
    const bytes = readFileSync(seg);
    bytes[4096 + 30]! ^= 1;
    writeFileSync(seg, bytes);
    const report = verifyVersions(store, [1, 2]);
    expect(report.problems.map((p) => p.file)).toEqual([seg, seg]);
    const manifest = store.manifestPath(1);
    writeFileSync(manifest, readFileSync(manifest, "utf8").replace('"import"', '"compact"'));
    bytes[4096 + 30]! ^= 1;
    writeFileSync(seg, bytes);
    expect(verifyVersions(store, [2]).problems[0]).toMatchObject({
      file: manifest,
      message: expect.stringMatching(/chain is broken/),
    });
  });

  it("cleans temp leftovers", async () => {
    await writer.importRows(batches([user(1)]));
    writeFileSync(join(store.dataDir, ".tmp-segment.seg.999999.abcdef12"), "x");
    writeFileSync(join(store.dataDir, `.tmp-segment.seg.${process.pid}.abcdef12`), "mine");
    writeFileSync(join(store.versionsDir, ".tmp-v00000009.999999.abcdef12"), "x");
    expect(store.cleanLeftovers()).toHaveLength(2);
    expect(get("u1").status).toBe("found");
  });
});
