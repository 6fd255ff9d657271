/**
 * The SegmentFetch service (proto/strata/v1/fleet.proto): how fleet nodes copy a version from
 * the writer (docs/fleet.md). GetManifest returns a retained MANIFEST byte for byte;
 * FetchSegment streams one immutable segment file in chunks, each with its offset and CRC-32, under
 * flow control. Files are read with plain reads (not the serving mappings) and never written, so
 * a transfer cannot disturb serving. Served by every node: a follower may fetch from any node
 * that holds the files, not only the writer.
 */
import { open, readFile } from "node:fs/promises";
import { crc32 } from "node:zlib";
import {
  status,
  type Server,
  type ServerUnaryCall,
  type ServerWritableStream,
  type ServiceDefinition,
  type UntypedServiceImplementation,
  type sendUnaryData,
} from "@grpc/grpc-js";
import { loadSync, type MethodDefinition, type PackageDefinition } from "@grpc/proto-loader";
import { PROTO_LOADER_OPTIONS, requireWellFormed, tolerateMalformedRequests } from "./proto.js";
import { RequestError } from "./errors.js";
import { bearerCheck } from "./auth.js";
import { toServiceError } from "./status-mapping.js";
import type { ServedTable } from "./served-table.js";
import { TableNotFoundError } from "../storage/errors.js";
import { sha256 } from "../storage/manifest.js";

export const FLEET_PROTO = "strata/v1/fleet.proto";
export const SEGMENT_FETCH_SERVICE = "strata.v1.SegmentFetch";
/** Bytes per SegmentChunk: well under grpc-js's default 4 MiB message limit. */
export const SEGMENT_CHUNK_BYTES = 1 << 20;

const UUID = /^[0-9a-f]{32}$/;

export function loadFleetProto(): PackageDefinition {
  const pkg = loadSync(FLEET_PROTO, PROTO_LOADER_OPTIONS);
  tolerateMalformedRequests(pkg[SEGMENT_FETCH_SERVICE] as Record<string, MethodDefinition<unknown, unknown>>);
  return pkg;
}

export interface SegmentFetchServiceOptions {
  tables: ReadonlyMap<string, ServedTable>;
  authToken: string | null;
}

/** Registers SegmentFetch on `server`. */
export function addSegmentFetchService(server: Server, options: SegmentFetchServiceOptions): void {
  const service = loadFleetProto()[SEGMENT_FETCH_SERVICE] as ServiceDefinition;
  server.addService(service, createSegmentFetchService(options));
}

export function createSegmentFetchService(o: SegmentFetchServiceOptions): UntypedServiceImplementation {
  const checkAuth = bearerCheck(o.authToken);
  const tableOf = (name: string): ServedTable => {
    if (!name) throw new RequestError("Request names no table");
    const t = o.tables.get(name);
    if (!t) throw new TableNotFoundError(name);
    return t;
  };

  return {
    async GetManifest(
      call: ServerUnaryCall<{ table: string; version: string }, object>,
      callback: sendUnaryData<object>,
    ) {
      try {
        checkAuth(call.metadata);
        requireWellFormed(call.request);
        const table = tableOf(call.request.table);
        const asked = Number(call.request.version);
        const version = asked === 0 ? table.store.requireCurrentVersion() : asked;
        // readManifest checks it parses and names this table and version; send the file's bytes.
        const { path } = table.store.readManifest(version);
        const bytes = await readFile(path);
        callback(null, {
          table: call.request.table,
          version: String(version),
          manifest: bytes,
          sha256: sha256(bytes),
        });
      } catch (err) {
        callback(toServiceError(err));
      }
    },

    async FetchSegment(call: ServerWritableStream<{ table: string; uuid: string; offset: string }, object>) {
      let file: Awaited<ReturnType<typeof open>> | null = null;
      try {
        checkAuth(call.metadata);
        requireWellFormed(call.request);
        const table = tableOf(call.request.table);
        const uuid = call.request.uuid;
        if (!UUID.test(uuid)) throw new RequestError(`Not a segment uuid: "${uuid}"`);
        try {
          file = await open(table.store.segmentPath(uuid), "r");
        } catch {
          call.emit("error", {
            code: status.NOT_FOUND,
            details: `Segment ${uuid} of table "${call.request.table}" is not on this node`,
          });
          return;
        }
        const size = (await file.stat()).size;
        let offset = Number(call.request.offset);
        if (!Number.isSafeInteger(offset) || offset < 0 || offset > size)
          throw new RequestError(`Offset ${call.request.offset} is outside the segment (${size} bytes)`);
        const buf = Buffer.allocUnsafe(SEGMENT_CHUNK_BYTES);
        while (offset < size && !call.cancelled) {
          const { bytesRead } = await file.read(buf, 0, Math.min(SEGMENT_CHUNK_BYTES, size - offset), offset);
          if (bytesRead === 0) break;
          const data = Buffer.from(buf.subarray(0, bytesRead)); // grpc-js may hold it after write()
          const more = call.write({ offset: String(offset), data, crc32: crc32(data), size: String(size) });
          offset += bytesRead;
          if (!more) await new Promise((resolve) => call.once("drain", resolve));
        }
        call.end();
      } catch (err) {
        call.emit("error", toServiceError(err));
      } finally {
        await file?.close();
      }
    },
  };
}
