// SegmentFetch over loopback gRPC: the service in src/serve, the fetcher in src/control.
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { EventEmitter } from "node:events";
import { createHash } from "node:crypto";
import { mkdtempSync, readFileSync, readdirSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { crc32 } from "node:zlib";
import {
  Server,
  ServerCredentials,
  type ServerWritableStream,
  type ServiceDefinition,
  type UntypedServiceImplementation,
} from "@grpc/grpc-js";
import {
  SEGMENT_FETCH_SERVICE,
  createSegmentFetchService,
  loadFleetProto,
} from "../../../src/serve/segment-fetch-service.js";
import { ServedTable } from "../../../src/serve/served-table.js";
import { MappedSegmentCache } from "../../../src/storage/mapped-segment.js";
import { TableStore } from "../../../src/storage/table-store.js";
import { VersionWriter, type RowChange } from "../../../src/storage/version-writer.js";
import { SegmentFetcher } from "../../../src/control/segment-fetcher.js";
import { SegmentCorruptError } from "../../../src/format/errors.js";
import { UnavailableError } from "../../../src/shared/errors.js";
import type { TableSchema } from "../../../src/format/schema.js";
import type { Manifest } from "../../../src/storage/manifest.js";

const schema: TableSchema = {
  name: "users",
  key: "user_id",
  topic: "strata.deltas.users",
  maxAgeMs: 0,
  features: [
    { name: "age", type: "int64" },
    { name: "bio", type: "string" },
  ],
};

async function* rows(n: number): AsyncGenerator<RowChange[]> {
  for (let i = 0; i < n; i += 1000) {
    yield Array.from({ length: Math.min(1000, n - i) }, (_, j) => ({
      key: `u${i + j}`,
      eventTimeMs: 1,
      values: [BigInt(i + j), `bio ${i + j} `.repeat(12)],
    }));
  }
}

const sha = (path: string): string => createHash("sha256").update(readFileSync(path)).digest("hex");

async function listen(service: UntypedServiceImplementation): Promise<{ server: Server; address: string }> {
  const server = new Server();
  server.addService(loadFleetProto()[SEGMENT_FETCH_SERVICE] as ServiceDefinition, service);
  const port = await new Promise<number>((resolve, reject) =>
    server.bindAsync("127.0.0.1:0", ServerCredentials.createInsecure(), (e, p) =>
      e ? reject(e) : resolve(p),
    ),
  );
  return { server, address: `127.0.0.1:${port}` };
}

describe("SegmentFetcher", () => {
  let root: string;
  let source: TableStore;
  let manifest: Manifest;
  let server: Server;
  let address: string;
  beforeAll(async () => {
    root = mkdtempSync(join(tmpdir(), "strata-fetch-"));
    source = new TableStore(join(root, "writer"), "users");
    manifest = await new VersionWriter(source, schema).importRows(rows(25_000)); // ~4 MB: several chunks
    const tables = new Map([
      ["users", new ServedTable(schema, join(root, "writer"), new MappedSegmentCache(), new EventEmitter())],
    ]);
    ({ server, address } = await listen(createSegmentFetchService({ tables, authToken: "t0ken" })));
  });
  afterAll(() => {
    server.forceShutdown();
    rmSync(root, { recursive: true, force: true });
  });

  it("fetchSegment() copies a multi-chunk segment byte for byte, then finds it present", async () => {
    const follower = new TableStore(join(root, "f1"), "users");
    follower.ensureLayout();
    const fetcher = new SegmentFetcher(address, { token: "t0ken" });
    const entry = manifest.segments[0]!;
    expect(entry.size).toBeGreaterThan(3 << 20);
    expect(await fetcher.fetchSegment(follower, entry, manifest.schema_hash)).toBe("fetched");
    expect(sha(follower.segmentPath(entry.uuid))).toBe(sha(source.segmentPath(entry.uuid)));
    expect(readdirSync(follower.dataDir)).toEqual([`${entry.uuid}.seg`]);
    expect(await fetcher.fetchSegment(follower, entry, manifest.schema_hash)).toBe("present");
    fetcher.close();
  });

  it("getManifest() returns the MANIFEST bytes and their SHA-256", async () => {
    const fetcher = new SegmentFetcher(address, { token: "t0ken" });
    const m = await fetcher.getManifest("users", 0);
    expect(m.version).toBe(1);
    expect(m.bytes).toEqual(readFileSync(source.manifestPath(1)));
    expect(m.sha256).toBe(source.readManifest(1).sha256);
    fetcher.close();
  });

  it("refuses without the bearer token, and names a segment that is not there", async () => {
    const follower = new TableStore(join(root, "f2"), "users");
    follower.ensureLayout();
    const noToken = new SegmentFetcher(address);
    await expect(noToken.fetchSegment(follower, manifest.segments[0]!, manifest.schema_hash)).rejects.toThrow(
      /bearer token/,
    );
    noToken.close();
    const fetcher = new SegmentFetcher(address, { token: "t0ken" });
    const missing = { ...manifest.segments[0]!, uuid: "f".repeat(32) };
    const err = await fetcher.fetchSegment(follower, missing, manifest.schema_hash).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(UnavailableError);
    expect((err as Error).message).toMatch(/is not on this node/);
    expect(readdirSync(follower.dataDir)).toEqual([]);
    fetcher.close();
  });

  it("a chunk that fails its CRC, or a short file, leaves nothing under the segment's name", async () => {
    const bytes = readFileSync(source.segmentPath(manifest.segments[0]!.uuid));
    let mode: "flip" | "short" = "flip";
    const bad = await listen({
      GetManifest: () => undefined,
      FetchSegment(call: ServerWritableStream<unknown, object>) {
        const size = String(bytes.length);
        const first = Buffer.from(bytes.subarray(0, 1 << 20));
        const crc = crc32(first);
        if (mode === "flip") first.writeUInt8(first.readUInt8(100) ^ 1, 100);
        call.write({ offset: "0", data: first, crc32: crc, size });
        call.end();
      },
    });
    const follower = new TableStore(join(root, "f3"), "users");
    follower.ensureLayout();
    const fetcher = new SegmentFetcher(bad.address);
    const flipped = await fetcher
      .fetchSegment(follower, manifest.segments[0]!, manifest.schema_hash)
      .catch((e) => e);
    expect(flipped).toBeInstanceOf(SegmentCorruptError);
    expect((flipped as Error).message).toMatch(/offset 0 that fails its CRC-32/);
    mode = "short";
    const short = await fetcher
      .fetchSegment(follower, manifest.segments[0]!, manifest.schema_hash)
      .catch((e) => e);
    expect(short).toBeInstanceOf(SegmentCorruptError);
    expect((short as Error).message).toMatch(/ended at 1048576 bytes/);
    expect(readdirSync(follower.dataDir)).toEqual([]);
    fetcher.close();
    bad.server.forceShutdown();
  });
});
