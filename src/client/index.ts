/**
 * A small typed client for Strata's gRPC API, for model servers written in TypeScript.
 *
 *   const client = createStrataClient("127.0.0.1:50051");
 *   const res = await client.getFeatures({ table: "users", keys: ["u1", "u2"] });
 *   for (const row of res.rows) if (row.status === "ROW_STATUS_FOUND") use(row.values);
 *   client.close();
 *
 * Values come as JS values: float32/float64 → number, int64 → string (exact), bool, string,
 * bytes → Buffer, float32[N] → number[], null → null.
 */
import {
  credentials,
  loadPackageDefinition,
  Metadata,
  status,
  type CallOptions,
  type ChannelCredentials,
  type ClientDuplexStream,
} from "@grpc/grpc-js";
import { loadFeatureStoreProto } from "../serve/proto.js";
import { Backoff } from "../shared/backoff.js";

export type RowStatus =
  "ROW_STATUS_FOUND" | "ROW_STATUS_NOT_FOUND" | "ROW_STATUS_OUTSIDE_MAX_AGE" | "ROW_STATUS_DATA_LOSS";
export type ClientValue = number | string | boolean | Buffer | number[] | null;

export interface GetFeaturesRequest {
  table: string;
  keys: string[];
  features?: string[];
  request_id?: number | string;
  version?: number;
  encoding?: "ENCODING_TYPED" | "ENCODING_PACKED";
  /** Gives up after this many ms (DEADLINE_EXCEEDED); default: the client's `deadlineMs`. */
  deadlineMs?: number;
}

export interface Row {
  key: string;
  status: RowStatus;
  event_time_ms: number;
  values: ClientValue[];
  packed: Buffer;
}

export interface GetFeaturesResponse {
  request_id: string;
  table: string;
  version: number;
  features: string[];
  rows: Row[];
  error_code: number;
  error_message: string;
}

/** A StreamFeatures stream (StrataClient.openStream). */
export interface FeatureStream {
  send(req: GetFeaturesRequest): Promise<GetFeaturesResponse>;
  /** Ends the stream once the requests sent are answered; a later send rejects (CANCELLED). */
  close(): void;
}

export interface ScanOptions {
  /** The version to read (0 = the one being served when the scan starts). */
  version?: number;
  features?: string[];
  /** Rows per chunk (default: the server sizes chunks to about 96 KiB, at most 1000 rows). */
  chunkRows?: number;
  /** Reads part `index` of `count`: the parts of one version hold every row once between them. */
  shard?: { index: number; count: number };
  /** Goes on after the chunk that carried this token (ScanChunk.resumeToken). */
  resumeToken?: Buffer;
  /** How many times in a row a broken stream (UNAVAILABLE) is resumed; default 3. */
  retries?: number;
}

export interface ScanChunk {
  /** The version every row of the scan comes from. */
  version: number;
  rows: Row[];
  /** Resumes the scan after this chunk (ScanOptions.resumeToken). */
  resumeToken: Buffer;
}

export interface VersionEvent {
  table: string;
  type: string;
  version: number;
  previous_version: number;
  reason: string;
  time_ms: number;
}

export interface StrataClientOptions {
  /** Sent as `authorization: Bearer <token>`. */
  token?: string;
  credentials?: ChannelCredentials;
  /** grpc-js channel options; the flow-control window defaults to 1 MiB (doubles streaming throughput). */
  channelOptions?: Record<string, string | number>;
  /** A deadline for every getFeatures call and stream request, in ms; none by default. */
  deadlineMs?: number;
}

/**
 * A failed request, shaped as grpc-js's ServiceError: `code` is the gRPC status, `details` the
 * server's message. A request that fails inside a stream rejects with one too.
 */
export interface StrataCallError extends Error {
  code: number;
  details: string;
}

function callError(code: number, details: string): StrataCallError {
  return Object.assign(new Error(`${code} ${status[code] ?? code}: ${details}`), { code, details });
}

interface RawRow {
  key: string;
  status: RowStatus;
  event_time_ms: string;
  values: Array<Record<string, unknown> & { value?: string }>;
  packed: Buffer;
}
interface RawResponse extends Omit<GetFeaturesResponse, "rows" | "version"> {
  version: string;
  rows: RawRow[];
}

interface RawScanChunk {
  version: string;
  rows: RawRow[];
  resume_token: Buffer;
}

type Callback<T> = (err: Error | null, value?: T) => void;
interface RawClient {
  GetFeatures(req: object, md: Metadata, options: CallOptions, cb: Callback<RawResponse>): void;
  StreamFeatures(md: Metadata): ClientDuplexStream<object, RawResponse>;
  DescribeTable(req: object, md: Metadata, cb: Callback<{ table: object }>): void;
  ListTables(req: object, md: Metadata, cb: Callback<{ tables: object[] }>): void;
  ScanTable(req: object, md: Metadata): NodeJS.ReadableStream;
  WatchVersions(req: object, md: Metadata): NodeJS.ReadableStream & { cancel(): void };
  close(): void;
}

/**
 * Unary calls are reads: grpc-js retries one that fails with UNAVAILABLE once connected (a server
 * going away as it arrives), up to 5 attempts with a backoff from 50 ms to 1 s, within its deadline.
 */
const READ_RETRIES = JSON.stringify({
  methodConfig: [
    {
      name: ["GetFeatures", "DescribeTable", "ListTables"].map((method) => ({
        service: "strata.v1.FeatureStore",
        method,
      })),
      retryPolicy: {
        maxAttempts: 5,
        initialBackoff: "0.05s",
        maxBackoff: "1s",
        backoffMultiplier: 2,
        retryableStatusCodes: ["UNAVAILABLE"],
      },
    },
  ],
});

export class StrataClient {
  readonly raw: RawClient;

  constructor(
    address: string,
    private readonly options: StrataClientOptions = {},
  ) {
    const pkg = loadPackageDefinition(loadFeatureStoreProto()) as unknown as {
      strata: { v1: { FeatureStore: new (a: string, c: ChannelCredentials, o: object) => RawClient } };
    };
    this.raw = new pkg.strata.v1.FeatureStore(address, options.credentials ?? credentials.createInsecure(), {
      "grpc-node.flow_control_window": 1 << 20,
      "grpc.service_config": READ_RETRIES,
      ...options.channelOptions,
    });
  }

  /** A call's metadata: the bearer token; `waitForReady` queues the call while no server can be reached. */
  metadata(options: { waitForReady?: boolean } = {}): Metadata {
    const md = new Metadata(options);
    if (this.options.token) md.set("authorization", `Bearer ${this.options.token}`);
    return md;
  }

  /**
   * One batch of rows. A call with a deadline (its own `deadlineMs` or the client's) waits for a
   * server that cannot be reached yet (a restart) until then, instead of failing at once with
   * UNAVAILABLE; one without fails at once.
   */
  getFeatures(req: GetFeaturesRequest): Promise<GetFeaturesResponse> {
    const ms = req.deadlineMs ?? this.options.deadlineMs;
    const options = ms === undefined ? {} : { deadline: Date.now() + ms };
    const metadata = this.metadata({ waitForReady: ms !== undefined });
    return new Promise((resolve, reject) =>
      this.raw.GetFeatures(toWire(req), metadata, options, (err, res) =>
        err ? reject(err) : resolve(fromWire(res!)),
      ),
    );
  }

  /**
   * A long-lived StreamFeatures stream: `send` resolves with the response to its request (matched
   * by request_id), or rejects as a unary call would. Requests are reads, so a stream that breaks
   * (UNAVAILABLE: a server stopping, restarting or gone) does not fail the requests it had not
   * answered: they are sent again on a new stream, after a backoff (from 50 ms, doubling, jittered), up to
   * `retries` times each (default 5, about 1.5 s), within their deadlines. Later sends use the
   * new stream.
   */
  openStream(options: { retries?: number } = {}): FeatureStream {
    const retries = options.retries ?? 5;
    type Waiting = {
      wire: object;
      attempts: number;
      resolve: (r: GetFeaturesResponse) => void;
      reject: (e: Error) => void;
      timer?: NodeJS.Timeout;
    };
    const pending = new Map<string, Waiting>();
    let call: ClientDuplexStream<object, RawResponse> | null = null;
    let closed = false;
    let nextId = 1;
    const backoff = new Backoff(50, 2000);
    const settle = (id: string): Waiting | undefined => {
      const p = pending.get(id);
      pending.delete(id);
      clearTimeout(p?.timer);
      return p;
    };
    const open = (): ClientDuplexStream<object, RawResponse> => {
      if (call) return call;
      const current = (call = this.raw.StreamFeatures(this.metadata()));
      let broken = false;
      const broke = (err: StrataCallError): void => {
        if (broken) return;
        broken = true;
        if (call === current) call = null;
        const delay = backoff.next();
        for (const [id, p] of [...pending]) {
          if (closed || err.code !== status.UNAVAILABLE || p.attempts >= retries) {
            settle(id)!.reject(err);
            continue;
          }
          p.attempts++;
          setTimeout(() => {
            if (pending.get(id) !== p) return; // answered meanwhile (a copy), or past its deadline
            if (closed) settle(id)!.reject(callError(status.CANCELLED, "The stream was closed"));
            else open().write(p.wire);
          }, delay);
        }
      };
      current.on("data", (res: RawResponse) => {
        backoff.reset();
        const p = settle(res.request_id);
        if (res.error_code !== 0) p?.reject(callError(res.error_code, res.error_message));
        else p?.resolve(fromWire(res));
      });
      current.on("error", (err: StrataCallError) => broke(err));
      current.on("end", () => broke(callError(status.UNAVAILABLE, "The server ended the stream")));
      return current;
    };
    return {
      send: (req) =>
        new Promise((resolve, reject) => {
          if (closed) return reject(callError(status.CANCELLED, "The stream was closed"));
          const id = String(req.request_id ?? nextId++);
          const ms = req.deadlineMs ?? this.options.deadlineMs;
          const timer =
            ms === undefined
              ? undefined
              : setTimeout(
                  () => settle(id)?.reject(callError(status.DEADLINE_EXCEEDED, "Deadline exceeded")),
                  ms,
                );
          const wire = toWire({ ...req, request_id: id });
          pending.set(id, { wire, attempts: 0, resolve, reject, ...(timer ? { timer } : {}) });
          open().write(wire);
        }),
      close: () => {
        closed = true;
        call?.end();
      },
    };
  }

  describeTable(table: string): Promise<Record<string, unknown>> {
    return new Promise((resolve, reject) =>
      this.raw.DescribeTable({ table }, this.metadata(), (err, res) =>
        err ? reject(err) : resolve(res!.table as Record<string, unknown>),
      ),
    );
  }

  listTables(): Promise<Record<string, unknown>[]> {
    return new Promise((resolve, reject) =>
      this.raw.ListTables({}, this.metadata(), (err, res) =>
        err ? reject(err) : resolve(res!.tables as Record<string, unknown>[]),
      ),
    );
  }

  /** Every row of a version (0 = current), chunk by chunk: `scanChunks`' rows. */
  async *scanTable(table: string, options: ScanOptions = {}): AsyncGenerator<Row[]> {
    for await (const chunk of this.scanChunks(table, options)) yield chunk.rows;
  }

  /**
   * Every row of one version, chunk by chunk, each with the token that resumes the scan after it
   * (`options.resumeToken`, in this process or another). A stream the network or a server
   * restart breaks (UNAVAILABLE) is resumed from the last chunk's token, up to `retries` times in
   * a row, so no row is skipped or repeated; the version must still be retained on the server.
   */
  async *scanChunks(table: string, options: ScanOptions = {}): AsyncGenerator<ScanChunk> {
    let token = options.resumeToken ?? Buffer.alloc(0);
    const backoff = new Backoff(100, 2000);
    for (;;) {
      const call = this.raw.ScanTable(
        {
          table,
          version: options.version ?? 0,
          features: options.features ?? [],
          chunk_rows: options.chunkRows ?? 0,
          resume_token: token,
          shard: options.shard?.index ?? 0,
          shard_count: options.shard?.count ?? 0,
        },
        this.metadata(),
      );
      try {
        for await (const chunk of call as AsyncIterable<RawScanChunk>) {
          token = chunk.resume_token;
          backoff.reset();
          yield { version: Number(chunk.version), rows: chunk.rows.map(rowFromWire), resumeToken: token };
        }
        return;
      } catch (err) {
        const code = (err as Partial<StrataCallError>).code;
        if (code !== status.UNAVAILABLE || backoff.attempts >= (options.retries ?? 3)) throw err;
        await new Promise((resolve) => setTimeout(resolve, backoff.next()));
      }
    }
  }

  /**
   * Calls `onEvent` for every version event of `tables` (all when empty), TYPE_SERVING first.
   * When the stream breaks (the server stops or restarts, the network), the watch subscribes
   * again after a backoff (up to 0.1 s doubling to 5 s, jittered) until `cancel()`, and TYPE_SERVING events then
   * say what is served now; `onError` hears of each break.
   */
  watchVersions(
    tables: string[],
    onEvent: (e: VersionEvent) => void,
    options: { onError?: (err: StrataCallError) => void } = {},
  ): { cancel(): void } {
    let call: ReturnType<RawClient["WatchVersions"]> | null = null;
    let cancelled = false;
    let retry: NodeJS.Timeout | null = null;
    const backoff = new Backoff(100, 5000);
    const subscribe = (): void => {
      const current = (call = this.raw.WatchVersions({ tables }, this.metadata()));
      let ended = false;
      const again = (err: StrataCallError): void => {
        if (ended || cancelled) return;
        ended = true;
        options.onError?.(err);
        retry = setTimeout(subscribe, backoff.next());
      };
      current.on("data", (e: Record<string, string>) => {
        backoff.reset();
        onEvent({
          table: e.table!,
          type: e.type!,
          version: Number(e.version),
          previous_version: Number(e.previous_version),
          reason: e.reason!,
          time_ms: Number(e.time_ms),
        });
      });
      current.on("error", (err: StrataCallError) => again(err));
      current.on("end", () => again(callError(status.UNAVAILABLE, "The watch stream ended")));
    };
    subscribe();
    return {
      cancel: () => {
        cancelled = true;
        if (retry) clearTimeout(retry);
        call?.cancel();
      },
    };
  }

  close(): void {
    this.raw.close();
  }
}

export function createStrataClient(address: string, options?: StrataClientOptions): StrataClient {
  return new StrataClient(address, options);
}

function toWire(req: GetFeaturesRequest): object {
  return {
    table: req.table,
    keys: req.keys,
    features: req.features ?? [],
    request_id: String(req.request_id ?? 0),
    version: String(req.version ?? 0),
    encoding: req.encoding ?? "ENCODING_TYPED",
  };
}

function fromWire(res: RawResponse): GetFeaturesResponse {
  return { ...res, version: Number(res.version), rows: res.rows.map(rowFromWire) };
}

function rowFromWire(r: RawRow): Row {
  return {
    key: r.key,
    status: r.status,
    event_time_ms: Number(r.event_time_ms),
    values: r.values.map(valueFromWire),
    packed: r.packed,
  };
}

function valueFromWire(v: Record<string, unknown> & { value?: string }): ClientValue {
  switch (v.value) {
    case "float32_value":
    case "float64_value":
    case "bool_value":
    case "string_value":
    case "bytes_value":
      return v[v.value] as ClientValue;
    case "int64_value":
      return String(v.int64_value);
    case "float32_vector_value":
      return (v.float32_vector_value as { values: number[] }).values;
    default:
      return null;
  }
}
