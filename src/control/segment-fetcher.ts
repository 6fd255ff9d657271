/**
 * A follower's side of SegmentFetch (proto/strata/v1/fleet.proto): copies a version's segment
 * files from another node into this node's data dir, durably and checked, before any manifest
 * names them (the publish order of docs/segment-format.md):
 *
 *   1. stream the chunks into a temp file under data/ (`.tmp-<uuid>.seg.<pid>.<rand>`), checking
 *      that each chunk starts where the last ended and matches its CRC-32 (a transfer error is
 *      caught at the chunk it happened in);
 *   2. fsync it, then check the whole file against the manifest entry (size, uuid, header CRC,
 *      body CRC, schema: checkSegmentFile) while it still has its temp name;
 *   3. rename it to data/<uuid>.seg and fsync data/.
 *
 * A failure at any step removes the temp file (a crash leaves it to the start-up sweep), so a
 * segment is only ever visible under its name complete and verified.
 */
import { existsSync, statSync } from "node:fs";
import { open, rename, rm } from "node:fs/promises";
import { crc32 } from "node:zlib";
import {
  credentials,
  loadPackageDefinition,
  Metadata,
  type ChannelCredentials,
  type ServiceError,
} from "@grpc/grpc-js";
import { loadFleetProto } from "../serve/segment-fetch-service.js";
import { fsyncDir, tempPathFor } from "../storage/durable-fs.js";
import { checkSegmentFile } from "../storage/segment-check.js";
import type { SegmentEntry } from "../storage/manifest.js";
import type { TableStore } from "../storage/table-store.js";
import { SegmentCorruptError } from "../format/errors.js";
import { UnavailableError, errorMessage } from "../shared/errors.js";

interface Chunk {
  offset: string;
  data: Buffer;
  crc32: number;
  size: string;
}

type Callback<T> = (err: ServiceError | null, value?: T) => void;

interface RawSegmentFetchClient {
  GetManifest(
    req: object,
    md: Metadata,
    options: { deadline: number },
    cb: Callback<{ manifest: Buffer; sha256: string; version: string }>,
  ): void;
  FetchSegment(req: object, md: Metadata): NodeJS.ReadableStream & { cancel(): void };
  close(): void;
}

export interface SegmentFetcherOptions {
  /** Bearer token the other node requires (STRATA_AUTH_TOKEN, shared by the fleet). */
  readonly token?: string | null;
  /** A transfer that receives nothing for this long is abandoned, ms. @default 10000 */
  readonly stallTimeoutMs?: number;
  /** TLS to nodes that serve it (`serve --tls-cert`); plaintext by default. */
  readonly credentials?: ChannelCredentials;
}

/** A connection to one node's SegmentFetch service. */
export class SegmentFetcher {
  private readonly raw: RawSegmentFetchClient;

  constructor(
    readonly address: string,
    private readonly options: SegmentFetcherOptions = {},
  ) {
    const pkg = loadPackageDefinition(loadFleetProto()) as unknown as {
      strata: {
        v1: { SegmentFetch: new (address: string, creds: unknown, options: object) => RawSegmentFetchClient };
      };
    };
    this.raw = new pkg.strata.v1.SegmentFetch(address, options.credentials ?? credentials.createInsecure(), {
      "grpc-node.flow_control_window": 1 << 20,
    });
  }

  /** A version's MANIFEST bytes as the other node holds them (0 = its current version). */
  getManifest(table: string, version: number): Promise<{ bytes: Buffer; sha256: string; version: number }> {
    return new Promise((resolve, reject) => {
      this.raw.GetManifest(
        { table, version: String(version) },
        this.metadata(),
        { deadline: Date.now() + (this.options.stallTimeoutMs ?? 10_000) },
        (err, res) => {
          if (err || !res) return reject(this.unavailable(`the manifest of ${table} v${version}`, err));
          resolve({ bytes: res.manifest, sha256: res.sha256, version: Number(res.version) });
        },
      );
    });
  }

  /**
   * Makes data/<uuid>.seg of `store` hold the segment `entry` describes, fetched from this node
   * unless a file of the right size is there already. Throws UnavailableError (transfer) or
   * SegmentCorruptError (bytes that do not match the manifest).
   */
  async fetchSegment(
    store: TableStore,
    entry: SegmentEntry,
    schemaHash: string,
  ): Promise<"present" | "fetched"> {
    const path = store.segmentPath(entry.uuid);
    if (existsSync(path) && statSync(path).size === entry.size) return "present";
    const tmp = tempPathFor(path);
    const file = await open(tmp, "wx", 0o644);
    let closed = false;
    try {
      const received = await this.receive(store.table, entry, async (chunk, at) => {
        let written = 0;
        while (written < chunk.length) {
          written += (await file.write(chunk, written, chunk.length - written, at + written)).bytesWritten;
        }
      });
      if (received !== entry.size) {
        throw new SegmentCorruptError(
          `Segment ${entry.uuid} of table "${store.table}" from ${this.address} ended at ${received} bytes, manifest says ${entry.size}`,
          path,
        );
      }
      await file.sync();
      await file.close();
      closed = true;
      checkSegmentFile(tmp, entry, schemaHash);
      await rename(tmp, path);
      fsyncDir(store.dataDir);
      return "fetched";
    } catch (err) {
      if (!closed) await file.close().catch(() => undefined);
      await rm(tmp, { force: true });
      throw err;
    }
  }

  close(): void {
    this.raw.close();
  }

  /** Streams the segment, checking chunk order and CRCs; returns the bytes received. */
  private receive(
    table: string,
    entry: SegmentEntry,
    write: (chunk: Buffer, at: number) => Promise<void>,
  ): Promise<number> {
    return new Promise((resolve, reject) => {
      const stream = this.raw.FetchSegment({ table, uuid: entry.uuid, offset: "0" }, this.metadata());
      let expected = 0;
      let failed = false;
      let writing: Promise<void> = Promise.resolve();
      const stallMs = this.options.stallTimeoutMs ?? 10_000;
      let stall = setTimeout(
        () => fail(this.unavailable(`segment ${entry.uuid}`, new Error(`no data for ${stallMs} ms`))),
        stallMs,
      );
      const fail = (err: Error): void => {
        if (failed) return;
        failed = true;
        clearTimeout(stall);
        stream.cancel();
        reject(err);
      };
      stream.on("data", (c: Chunk) => {
        clearTimeout(stall);
        stall = setTimeout(
          () => fail(this.unavailable(`segment ${entry.uuid}`, new Error(`stalled for ${stallMs} ms`))),
          stallMs,
        );
        const offset = Number(c.offset);
        const bad =
          offset !== expected
            ? `a chunk at offset ${offset}, expected ${expected}`
            : Number(c.size) !== entry.size
              ? `a file of ${c.size} bytes, manifest says ${entry.size}`
              : crc32(c.data) !== c.crc32
                ? `a chunk at offset ${offset} that fails its CRC-32`
                : null;
        if (bad) {
          return fail(
            new SegmentCorruptError(`Segment ${entry.uuid} of table "${table}" from ${this.address}: ${bad}`),
          );
        }
        expected += c.data.length;
        // Writes are chained in order; the stream is paused while one is pending (backpressure).
        stream.pause();
        writing = writing
          .then(() => write(c.data, offset))
          .then(
            () => void stream.resume(),
            (err: unknown) => fail(err instanceof Error ? err : new Error(String(err))),
          );
      });
      stream.on("error", (err: ServiceError) => fail(this.unavailable(`segment ${entry.uuid}`, err)));
      stream.on("end", () => {
        clearTimeout(stall);
        void writing.then(() => {
          if (!failed) resolve(expected);
        });
      });
    });
  }

  private metadata(): Metadata {
    const md = new Metadata();
    if (this.options.token) md.set("authorization", `Bearer ${this.options.token}`);
    return md;
  }

  private unavailable(what: string, err: unknown): UnavailableError {
    const detail = (err as ServiceError | null)?.details || errorMessage(err);
    return new UnavailableError(`Cannot fetch ${what} from ${this.address}: ${detail}`, { cause: err });
  }
}
