/**
 * The FeatureStore service: thin handlers over ServedTable snapshots and the response encoder.
 * Every response is read from one snapshot, taken once when the request starts.
 */
import type { EventEmitter } from "node:events";
import {
  status,
  type ServerUnaryCall,
  type ServerWritableStream,
  type UntypedServiceImplementation,
  type sendUnaryData,
} from "@grpc/grpc-js";
import { ResponseEncoder, type Encoding } from "./response-encoder.js";
import { FRAME_PREFIX_BYTES } from "./message-framing.js";
import { releaseGetFeaturesRequest, type GetFeaturesRequest } from "./request-decoder.js";
import { keyLength } from "../format/key-batch.js";
import { MAX_KEY_BYTES } from "../format/segment-layout.js";
import type { ServedTable, VersionEvent } from "./served-table.js";
import { RequestError, RequestTooLargeError } from "./errors.js";
import { bearerCheck } from "./auth.js";
import { toGrpcStatus, toServiceError } from "./status-mapping.js";
import { requireWellFormed } from "./proto.js";
import type { ServerMetrics } from "./metrics.js";
import { TableNotFoundError } from "../storage/errors.js";
import { UnavailableError } from "../shared/errors.js";
import { VersionScanner, WHOLE_VERSION, type ScanPosition, type ScanShard } from "../storage/version-scan.js";
import { decodeScanToken, encodeScanToken } from "./scan-token.js";
import type { Logger } from "../shared/logger.js";
import type { BidiCall, UnaryCall, UnaryCallback } from "./direct-bidi.js";

export interface FeatureServiceOptions {
  tables: Map<string, ServedTable>;
  events: EventEmitter;
  metrics: ServerMetrics;
  logger: Logger;
  maxKeysPerRequest: number;
  maxResponseBytes: number;
  authToken: string | null;
  /**
   * Aborted when the server begins to stop: feature streams, scans and version watches end with
   * UNAVAILABLE (a scan at its next chunk), so that clients go on elsewhere instead of holding the
   * shutdown.
   */
  stopping: AbortSignal;
  /** Freshness of a table's ingest, when this process runs the ingestor. */
  freshness?: (table: string) => { kafkaLag: number; lastPublishMs: number } | null;
}

/**
 * Without chunk_rows, a scan sends about this many bytes a message (at most 1000 rows): messages
 * that fit the response slabs (slab.ts) instead of a fresh allocation each. 290 KiB chunks of 1000
 * rows cost 0.72-0.85 s of server CPU a million rows; chunks under 100 KiB, 0.52 s.
 */
const SCAN_CHUNK_BYTES = 96 * 1024;
const DEFAULT_SCAN_CHUNK_ROWS = 1000;
const MAX_SCAN_CHUNK_ROWS = 100_000;

export function createFeatureService(o: FeatureServiceOptions) {
  // A response (with its frame prefix) must fit grpc-js's send limit, which is maxResponseBytes.
  const encoder = new ResponseEncoder(o.maxResponseBytes - FRAME_PREFIX_BYTES);

  const tableOf = (name: string): ServedTable => {
    if (!name) throw new RequestError("Request names no table");
    const t = o.tables.get(name);
    if (!t) throw new TableNotFoundError(name);
    return t;
  };

  const checkAuth = bearerCheck(o.authToken);

  const encodingOf = (e: number | string): Encoding => {
    if (e === 0 || e === 1 || e === "ENCODING_UNSPECIFIED" || e === "ENCODING_TYPED") return "typed";
    if (e === 2 || e === "ENCODING_PACKED") return "packed";
    throw new RequestError(`Unknown encoding ${e}`);
  };

  /** Answers one GetFeaturesRequest (then released): the encoded response, or throws a StrataError. */
  const answer = (req: GetFeaturesRequest): Buffer => {
    try {
      return encode(req);
    } finally {
      releaseGetFeaturesRequest(req);
    }
  };

  const encode = (req: GetFeaturesRequest): Buffer => {
    if (req.invalid) throw new RequestError(req.invalid);
    const table = tableOf(req.table);
    const keys = req.keys;
    if (keys.count === 0) throw new RequestError("Request has no keys");
    if (keys.count > o.maxKeysPerRequest) {
      throw new RequestTooLargeError(
        `Request has ${keys.count} keys; the limit is ${o.maxKeysPerRequest} (STRATA_MAX_KEYS_PER_REQUEST)`,
      );
    }
    for (let i = 0; i < keys.count; i++) {
      const length = keyLength(keys, i);
      if (length === 0) throw new RequestError("Request has an empty key");
      if (length > MAX_KEY_BYTES)
        throw new RequestError(`Request has a key of ${length} bytes; a key is 1 to ${MAX_KEY_BYTES} bytes`);
    }
    const snapshot = table.snapshotFor(req.version);
    const plan = table.plan(req.features, encodingOf(req.encoding), snapshot);
    const counters = table.rowCounts;
    const before = counters.dataLoss;
    const buf = encoder.encodeGetFeatures(
      snapshot,
      plan,
      req.requestIdLo,
      req.requestIdHi,
      keys,
      table.schema.maxAgeMs,
      Date.now(),
      counters,
    );
    if (counters.dataLoss !== before) onDataLoss(table, counters.dataLoss - before);
    return buf;
  };

  const onDataLoss = (table: ServedTable, rows: number): void => {
    o.metrics.crcFailures.inc({ table: table.schema.name }, rows);
    o.logger.error(
      { table: table.schema.name, version: table.servingVersion, rows },
      "records failed their CRC check: verifying the version",
    );
    setImmediate(() => void table.quarantine());
  };

  const observe = (method: string, started: number, code: status): void => {
    o.metrics.observeRequest(method, code, (performance.now() - started) / 1000);
  };

  const service = {
    // Served by DirectBidiCall too (unaryAsBidi), or by grpc-js when a client compresses its request.
    GetFeatures(call: UnaryCall<GetFeaturesRequest>, callback: UnaryCallback<Buffer>) {
      const started = performance.now();
      try {
        checkAuth(call.metadata);
        const buf = answer(call.request);
        observe("GetFeatures", started, status.OK);
        callback(null, buf);
      } catch (err) {
        const failure = toServiceError(err);
        if (failure.code === status.INTERNAL) o.logger.error({ err }, "GetFeatures failed");
        observe("GetFeatures", started, failure.code);
        callback(failure);
      }
    },

    // Served by DirectBidiCall (direct-bidi.ts), or by grpc-js when a client compresses its requests.
    StreamFeatures(call: BidiCall<GetFeaturesRequest, Buffer | object>) {
      try {
        checkAuth(call.metadata);
      } catch (err) {
        call.emit("error", toServiceError(err));
        return;
      }
      call.on("data", (req: GetFeaturesRequest) => {
        const started = performance.now();
        let out: Buffer | object;
        let code: status = status.OK;
        try {
          out = answer(req);
        } catch (err) {
          const s = toGrpcStatus(err);
          code = s.code;
          if (s.code === status.INTERNAL) o.logger.error({ err }, "StreamFeatures request failed");
          out = {
            request_id: requestIdString(req),
            table: req.table,
            error_code: s.code,
            error_message: s.details,
          };
        }
        observe("StreamFeatures", started, code);
        // Backpressure: stop reading requests while the client is not reading responses.
        if (!call.write(out)) {
          call.pause();
          call.once("drain", () => call.resume());
        }
      });
      // A stopping server ends the stream once what it has read is answered (UNAVAILABLE): the
      // client sends what is left on a new stream, to this server's successor or another.
      const stopping = (): void =>
        void call.emit(
          "error",
          toServiceError(new UnavailableError("The server is stopping: send again on a new stream")),
        );
      const done = (): void => o.stopping.removeEventListener("abort", stopping);
      if (o.stopping.aborted) return stopping();
      o.stopping.addEventListener("abort", stopping, { once: true });
      call.on("end", () => (done(), call.end()));
      call.on("error", () => (done(), call.end()));
      call.on("close", done);
    },

    async ScanTable(call: ServerWritableStream<ScanRequest, Buffer>) {
      const started = performance.now();
      try {
        checkAuth(call.metadata);
        requireWellFormed(call.request);
        const req = call.request;
        const table = tableOf(req.table);
        const { version, shard, position } = scanStart(req);
        const snapshot = table.snapshotFor(version);
        const plan = table.plan(req.features, encodingOf(req.encoding), snapshot);
        if (position && !VersionScanner.isValidPosition(snapshot, shard, position))
          throw new RequestError("resume_token is not a position in its version");
        const scanner = new VersionScanner(snapshot, shard, position);
        // Asked for, or sized by the rows so far to about SCAN_CHUNK_BYTES (the first chunk: 100 rows).
        let chunkRows = req.chunk_rows === 0 ? 100 : Math.min(req.chunk_rows, MAX_SCAN_CHUNK_ROWS);
        while (!call.cancelled) {
          if (o.stopping.aborted)
            throw new UnavailableError(
              `The server is stopping: resume the scan with the last resume_token (version ${snapshot.version})`,
            );
          const rows = scanner.nextChunk(chunkRows);
          if (rows === 0) break;
          const token = encodeScanToken(table.schema.name, {
            version: snapshot.version,
            shard,
            position: scanner.position,
          });
          const buf = encoder.encodeScanChunk(
            snapshot,
            plan,
            scanner.keys,
            scanner.located,
            table.schema.maxAgeMs,
            Date.now(),
            table.rowCounts,
            token,
          );
          if (req.chunk_rows === 0)
            chunkRows = Math.max(
              1,
              Math.min(DEFAULT_SCAN_CHUNK_ROWS, Math.floor((SCAN_CHUNK_BYTES * rows) / buf.length)),
            );
          if (!call.write(buf)) await drainedOrStopping(call, o.stopping);
        }
        if (call.cancelled) return;
        observe("ScanTable", started, status.OK);
        call.end();
      } catch (err) {
        const failure = toServiceError(err);
        observe("ScanTable", started, failure.code);
        call.emit("error", failure);
      }
    },

    WatchVersions(call: ServerWritableStream<{ tables: string[] }, object>) {
      try {
        checkAuth(call.metadata);
        requireWellFormed(call.request);
        for (const name of call.request.tables) tableOf(name);
      } catch (err) {
        call.emit("error", toServiceError(err));
        return;
      }
      const wanted = new Set(call.request.tables);
      const send = (e: VersionEvent): void => {
        if (wanted.size > 0 && !wanted.has(e.table)) return;
        call.write({
          table: e.table,
          type: `TYPE_${e.type.toUpperCase()}`,
          version: String(e.version),
          previous_version: String(e.previousVersion),
          reason: e.reason,
          time_ms: String(e.timeMs),
        });
      };
      for (const t of o.tables.values()) {
        if (t.servingVersion > 0) {
          send({
            table: t.schema.name,
            type: "serving",
            version: t.servingVersion,
            previousVersion: 0,
            reason: "serving",
            timeMs: Date.now(),
          });
        }
      }
      o.events.on("version", send);
      // A stopping server ends the watch (UNAVAILABLE) rather than hold its shutdown: the client
      // subscribes again, to this server's successor or another, and gets TYPE_SERVING first.
      const stopping = (): void => {
        stop();
        call.emit("error", toServiceError(new UnavailableError("The server is stopping: watch again")));
      };
      const stop = (): void => {
        o.events.off("version", send);
        o.stopping.removeEventListener("abort", stopping);
      };
      if (o.stopping.aborted) return stopping();
      o.stopping.addEventListener("abort", stopping, { once: true });
      call.on("cancelled", stop);
      call.on("close", stop);
    },

    ListTables(call: ServerUnaryCall<object, object>, callback: sendUnaryData<object>) {
      try {
        checkAuth(call.metadata);
        requireWellFormed(call.request);
        callback(null, { tables: [...o.tables.values()].map((t) => describe(t, o.freshness)) });
      } catch (err) {
        callback(toServiceError(err));
      }
    },

    DescribeTable(call: ServerUnaryCall<{ table: string }, object>, callback: sendUnaryData<object>) {
      try {
        checkAuth(call.metadata);
        requireWellFormed(call.request);
        callback(null, { table: describe(tableOf(call.request.table), o.freshness) });
      } catch (err) {
        callback(toServiceError(err));
      }
    },
  } satisfies UntypedServiceImplementation;
  return service;
}

interface ScanRequest {
  table: string;
  version: string;
  features: string[];
  encoding: string;
  chunk_rows: number;
  resume_token: Buffer;
  shard: number;
  shard_count: number;
}

/**
 * Resolves when the client has read what was written, has gone away (no drain would ever come,
 * and the scan would hold its snapshot for good), or the server begins to stop.
 */
function drainedOrStopping(
  call: ServerWritableStream<ScanRequest, Buffer>,
  stopping: AbortSignal,
): Promise<void> {
  return new Promise((resolve) => {
    const done = (): void => {
      call.off("drain", done);
      call.off("cancelled", done);
      stopping.removeEventListener("abort", done);
      resolve();
    };
    call.once("drain", done);
    call.once("cancelled", done);
    stopping.addEventListener("abort", done, { once: true });
  });
}

/** The version, shard and position a scan request asks for: a new scan, or one resumed from its token. */
function scanStart(req: ScanRequest): { version: number; shard: ScanShard; position?: ScanPosition } {
  const version = Number(req.version);
  const shard = req.shard_count === 0 ? WHOLE_VERSION : { index: req.shard, count: req.shard_count };
  if (req.shard_count === 0 && req.shard !== 0)
    throw new RequestError(`shard ${req.shard} needs shard_count (0 parts = the whole table)`);
  if (shard.index >= shard.count)
    throw new RequestError(`shard must be below shard_count (${shard.index} of ${shard.count})`);
  if (req.resume_token.length === 0) return { version, shard };
  const token = decodeScanToken(req.table, req.resume_token);
  if (version !== 0 && version !== token.version)
    throw new RequestError(`resume_token is of a scan of version ${token.version}, not ${version}`);
  if (req.shard_count !== 0 && (shard.index !== token.shard.index || shard.count !== token.shard.count))
    throw new RequestError(
      `resume_token is of shard ${token.shard.index} of ${token.shard.count}, not ${shard.index} of ${shard.count}`,
    );
  if (!(token.shard.count >= 1 && token.shard.index < token.shard.count))
    throw new RequestError("resume_token is not a position in its version");
  return token;
}

function requestIdString(req: GetFeaturesRequest): string {
  return ((BigInt(req.requestIdHi) << 32n) | BigInt(req.requestIdLo)).toString();
}

function describe(t: ServedTable, freshness: FeatureServiceOptions["freshness"]): object {
  const state = t.store.readState();
  const snapshot = t.snapshot;
  const versions = t.store
    .listVersions()
    .reverse()
    .map((v) => {
      const m = t.store.readManifest(v).manifest;
      return {
        version: String(v),
        reason: m.reason,
        created_at_ms: String(m.created_at_ms),
        rolled_back: state.rolled_back.includes(v),
        records: String(m.segments.reduce((n, s) => n + s.records, 0)),
        parent: String(m.parent ?? 0),
      };
    });
  const maxEventTime = snapshot ? Math.max(...snapshot.manifest.segments.map((s) => s.max_event_time_ms)) : 0;
  const ingest = freshness?.(t.schema.name) ?? null;
  return {
    name: t.schema.name,
    key: t.schema.key,
    features: t.schema.features.map((f) => ({ name: f.name, type: f.type })),
    max_age_ms: String(t.schema.maxAgeMs),
    serving_version: String(t.servingVersion),
    current_version: String(t.store.currentVersion() ?? 0),
    versions,
    pinned: state.pinned,
    pinned_version: String(state.pinned_version ?? 0),
    schema_hash: snapshot?.manifest.schema_hash ?? "",
    freshness: {
      kafka_lag: String(ingest?.kafkaLag ?? -1),
      event_time_lag_ms: String(snapshot && maxEventTime > 0 ? Date.now() - maxEventTime : -1),
      last_publish_ms: String(ingest?.lastPublishMs ?? snapshot?.manifest.created_at_ms ?? 0),
    },
  };
}
