/**
 * Bidirectional calls served straight on HTTP/2 (decision 32). grpc-js runs every message of a
 * stream through machinery of its own: a promise per message (its decompression step, even for
 * uncompressed ones), a pause and a resume of the HTTP/2 stream per message, an object-mode Duplex
 * between the call and the handler. On StreamFeatures that was 10-15 µs of the server's 55-69 µs
 * of CPU a 100-key batch (alternated bench runs). So the methods given to `serveDirectly` are taken from
 * grpc-js at the HTTP/2 stream: on grpc-js's own sessions (same port, TLS, keepalive, settings,
 * shutdown), a DirectBidiCall speaks the gRPC wire protocol for them (5-byte framed messages in
 * and out, the status in trailers) and hands the method's handler the part of a grpc-js duplex
 * call that handlers use. A call it does not take (compressed requests, a content type that is
 * not gRPC's) and every other method go through grpc-js as before. A unary method is served the
 * same way, as a call of one message each way (`unaryAsBidi`).
 *
 * This reaches into grpc-js, as message-framing.ts does: its server's private per-stream handlers
 * (`_streamHandler`, `_channelzHandler`), which it binds to each HTTP/2 server when it binds a port.
 * A grpc-js without them serves these methods itself (`serveDirectly` returns false and the server
 * logs it) and test/system/direct-bidi.test.ts fails, so that an upgrade notices.
 */
import { EventEmitter } from "node:events";
import type { IncomingHttpHeaders, ServerHttp2Stream } from "node:http2";
import { Metadata, status, type Server } from "@grpc/grpc-js";
import { FRAME_PREFIX_BYTES, copyIntoFrame, framingOf } from "./message-framing.js";

/** The part of a grpc-js duplex call (ServerDuplexStream) that a handler served directly may use. */
export interface BidiCall<Req, Res> {
  readonly metadata: Metadata;
  readonly cancelled: boolean;
  /** false: stop writing (and reading) until "drain". */
  write(message: Res): boolean;
  pause(): void;
  resume(): void;
  /** Ends the call: OK, or the status of an error emitted as "error" before. */
  end(): void;
  /** "data" (a request), "end" (the client is done sending), "drain", "cancelled", "close"; "error" fails the call. */
  on(event: "data", listener: (request: Req) => void): this;
  on(event: "end" | "drain" | "cancelled" | "close", listener: () => void): this;
  on(event: "error", listener: (err: unknown) => void): this;
  once(event: "drain", listener: () => void): this;
  emit(event: "error", err: CallError): boolean;
}

/** What a handler fails a call with, as grpc-js takes it: a status, its details, trailers. */
export interface CallError {
  code?: status;
  details?: string;
  metadata?: Metadata;
}

interface StatusObject {
  code: status;
  details: string;
  metadata: Metadata | null;
}

/** The part of a grpc-js unary call (ServerUnaryCall) that a handler served directly may use. */
export interface UnaryCall<Req> {
  readonly metadata: Metadata;
  readonly request: Req;
}
/** How a unary handler answers: an error (its status, details, trailers) or the response. */
export type UnaryCallback<Res> = (err: CallError | null, value?: Res) => void;

/**
 * A unary handler served directly: a call of one message each way, on which the handler runs once
 * the client has sent its request and half-closed, as grpc-js runs it.
 */
export function unaryAsBidi<Req, Res>(
  handler: (call: UnaryCall<Req>, callback: UnaryCallback<Res>) => void,
): (call: BidiCall<Req, Res>) => void {
  return (call) => {
    let request: { value: Req } | null = null;
    call.on("data", (value: Req) => {
      if (request === null) request = { value };
      else call.emit("error", { code: status.UNIMPLEMENTED, details: "A second request on a unary method" });
    });
    call.on("end", () => {
      if (request === null)
        return void call.emit("error", {
          code: status.UNIMPLEMENTED,
          details: "No request on a unary method",
        });
      handler({ metadata: call.metadata, request: request.value }, (err, value) => {
        if (err !== null) return void call.emit("error", err);
        call.write(value as Res);
        call.end();
      });
    });
  };
}

/**
 * What a directly served method's definition must give: its path and codecs (a grpc-js
 * MethodDefinition does). Methods, so that a definition of any message types fits.
 */
export interface DirectDefinition<Req, Res> {
  readonly path: string;
  requestDeserialize(bytes: Buffer): Req;
  responseSerialize(value: Res): Buffer;
}

/** A method to serve directly: its definition (path and codecs) and its handler. */
export interface DirectMethod<Req = unknown, Res = unknown> {
  definition: DirectDefinition<Req, Res>;
  /** A method, so that a handler of requests of any type fits (parameters of methods are bivariant). */
  handler(call: BidiCall<Req, Res>): void;
}

export interface DirectLimits {
  /** Largest request message (grpc.max_receive_message_length); larger is RESOURCE_EXHAUSTED. */
  maxRequestBytes: number;
  /** Largest response message (grpc.max_send_message_length). */
  maxResponseBytes: number;
}

/**
 * Responses queued on one call beyond which `write` says to wait for "drain". An HTTP/2 stream's
 * own mark (16 KiB) is below one response of 100 rows: keeping to it would stop reading after
 * every answer. 1 MiB is the flow-control window the server gives each stream.
 */
const MAX_QUEUED_BYTES = 1 << 20;

type StreamHandler = (
  this: unknown,
  extra: unknown,
  stream: ServerHttp2Stream,
  headers: IncomingHttpHeaders,
) => void;
interface GrpcServerInternals {
  _streamHandler?: StreamHandler;
  _channelzHandler?: StreamHandler;
  onStreamOpened?: (stream: ServerHttp2Stream) => void;
}

/**
 * Makes `server` serve these bidirectional methods through DirectBidiCall on the ports it binds
 * from now on (call it before `bindAsync`). false if this grpc-js has no such hook: grpc-js then
 * serves them itself, through the handlers registered with `addService`.
 */
export function serveDirectly(server: Server, methods: DirectMethod[], limits: DirectLimits): boolean {
  const internals = server as unknown as GrpcServerInternals;
  const names = ["_streamHandler", "_channelzHandler"] as const;
  if (names.some((name) => typeof internals[name] !== "function")) return false;
  const byPath = new Map(methods.map((m) => [m.definition.path, m]));
  for (const name of names) {
    const grpcJs = internals[name]!;
    internals[name] = function (this: unknown, extra, stream, headers) {
      const method = byPath.get(headers[":path"] ?? "");
      if (method === undefined || !speaksPlainGrpc(headers)) return grpcJs.call(this, extra, stream, headers);
      internals.onStreamOpened?.call(this, stream); // grpc-js's idle-connection tracking
      new DirectBidiCall(stream, headers, method, limits).start();
    };
  }
  return true;
}

/** A gRPC request whose messages are not compressed: what DirectBidiCall speaks. */
function speaksPlainGrpc(headers: IncomingHttpHeaders): boolean {
  const encoding = headers["grpc-encoding"];
  return (
    (headers["content-type"]?.startsWith("application/grpc") ?? false) &&
    (encoding === undefined || encoding === "identity")
  );
}

const RESPONSE_HEADERS = {
  ":status": 200,
  "content-type": "application/grpc+proto",
  // What the server decodes: compressed calls are taken by grpc-js (speaksPlainGrpc).
  "grpc-accept-encoding": "identity,deflate,gzip",
  "grpc-encoding": "identity",
};

/** grpc-timeout: up to 8 digits and a unit (gRPC over HTTP/2). */
const TIMEOUT = /^(\d{1,8})([HMSmun])$/;
const TIMEOUT_UNIT_MS: Record<string, number> = { H: 3_600_000, M: 60_000, S: 1000, m: 1, u: 1e-3, n: 1e-6 };
/** setTimeout's longest delay (about 24.8 days); a deadline further off is none. */
const MAX_TIMER_MS = 2 ** 31 - 1;

/** One call of a directly served method on its HTTP/2 stream. */
class DirectBidiCall<Req, Res> extends EventEmitter implements BidiCall<Req, Res> {
  readonly metadata: Metadata;
  cancelled = false;
  private headersSent = false;
  /** The status is being sent: nothing more is read or written. */
  private finished = false;
  /** The status has gone to HTTP/2 (a reset stream never sends the trailers it waited for). */
  private statusSent = false;
  private pendingStatus: StatusObject = { code: status.OK, details: "OK", metadata: null };
  /** Bytes received after the last whole message (a message split across DATA frames). */
  private partial: Buffer | null = null;
  /** DATA frames received after `partial` while the message they continue is still incomplete. */
  private more: Buffer[] = [];
  private moreBytes = 0;
  /** Bytes `partial` needs before `deliver` can go on: the next message's prefix, or all of it. */
  private needed = 0;
  private paused = false;
  private halfClosed = false;
  private deadline: NodeJS.Timeout | null = null;

  constructor(
    private readonly stream: ServerHttp2Stream,
    headers: IncomingHttpHeaders,
    private readonly method: DirectMethod<Req, Res>,
    private readonly limits: DirectLimits,
  ) {
    super();
    this.metadata = Metadata.fromHttp2Headers(headers);
    for (const name of ["grpc-timeout", "grpc-encoding", "grpc-accept-encoding", "te", "content-type"])
      this.metadata.remove(name);
    // As grpc-js's duplex call: an emitted error becomes the status the call ends with.
    this.on("error", (err: CallError) => {
      this.pendingStatus = {
        code: err.code ?? status.UNKNOWN,
        details: err.details ?? "Unknown error",
        metadata: err.metadata ?? null,
      };
      this.end();
    });
    const timeout = headers["grpc-timeout"];
    if (typeof timeout === "string") this.startDeadline(timeout);
  }

  start(): void {
    const stream = this.stream;
    // An error is followed by "close", which is where the call is cancelled.
    stream.on("error", () => {});
    stream.on("close", () => this.onClose());
    stream.on("drain", () => this.tell("drain"));
    stream.on("data", (chunk: Buffer) => this.onData(chunk));
    stream.on("end", () => {
      this.halfClosed = true;
      this.deliver();
    });
    if (this.finished) return; // a malformed grpc-timeout
    try {
      this.method.handler(this);
    } catch {
      this.fail(status.UNKNOWN, "Server method handler threw an error");
    }
  }

  write(message: Res): boolean {
    if (this.finished || this.stream.destroyed) return false;
    const framing = framingOf(message);
    const frame = framing?.frame ?? this.frame(message);
    if (frame === null) return false;
    if (!this.headersSent) {
      this.headersSent = true;
      this.stream.respond(RESPONSE_HEADERS, { waitForTrailers: true });
    }
    const onSent = framing?.onSent;
    if (onSent === undefined) this.stream.write(frame);
    else this.stream.write(frame, (err) => err || onSent(message as Buffer));
    return this.stream.writableLength < MAX_QUEUED_BYTES;
  }

  /** A message that is not framed yet: serialized, checked against the limit, and copied into a frame. */
  private frame(message: Res): Buffer | null {
    let bytes: Buffer;
    try {
      bytes = this.method.definition.responseSerialize(message);
    } catch {
      this.fail(status.INTERNAL, "Error serializing response");
      return null;
    }
    if (bytes.length > this.limits.maxResponseBytes) {
      this.fail(
        status.RESOURCE_EXHAUSTED,
        `Sent message larger than max (${bytes.length} vs. ${this.limits.maxResponseBytes})`,
      );
      return null;
    }
    return copyIntoFrame(bytes);
  }

  pause(): void {
    this.paused = true;
    this.stream.pause();
  }

  resume(): void {
    if (!this.paused) return;
    this.paused = false;
    this.deliver();
    if (!this.paused) this.stream.resume();
  }

  end(): void {
    if (this.finished) return;
    this.finished = true;
    this.clearDeadline();
    const { code, details, metadata } = this.pendingStatus;
    const trailers = {
      "grpc-status": String(code),
      "grpc-message": encodeURI(details),
      ...metadata?.toHttp2Headers(),
    };
    const stream = this.stream;
    if (stream.destroyed || stream.closed) return;
    if (this.headersSent) {
      stream.once("wantTrailers", () => {
        this.statusSent = true;
        stream.sendTrailers(trailers);
      });
      stream.end();
    } else {
      // Trailers-only: the status in the response headers.
      this.statusSent = true;
      stream.respond({ ...RESPONSE_HEADERS, ...trailers }, { endStream: true });
    }
    // Whatever else the client sends is read and dropped, so that its flow-control window stays open.
    stream.resume();
  }

  private fail(code: status, details: string): void {
    this.pendingStatus = { code, details, metadata: null };
    this.end();
  }

  private onData(chunk: Buffer): void {
    if (this.finished) return;
    if (this.partial === null) {
      this.partial = chunk;
    } else {
      // A large request comes in many frames: joined once it is whole, not once a frame.
      this.more.push(chunk);
      this.moreBytes += chunk.length;
      if (this.partial.length + this.moreBytes < this.needed) return;
    }
    this.deliver();
  }

  /** Hands each whole message received to the handler, until it pauses; then the half-close. */
  private deliver(): void {
    if (this.more.length > 0) {
      this.partial = Buffer.concat([this.partial!, ...this.more]);
      this.more = [];
      this.moreBytes = 0;
    }
    this.needed = 0;
    let buf = this.partial;
    let at = 0;
    while (buf !== null && !this.paused && !this.finished && buf.length - at >= FRAME_PREFIX_BYTES) {
      const length = buf.readUInt32BE(at + 1);
      if (buf[at] !== 0) {
        return this.fail(status.INTERNAL, "A compressed message on a call without grpc-encoding");
      }
      if (length > this.limits.maxRequestBytes) {
        return this.fail(
          status.RESOURCE_EXHAUSTED,
          `Received message larger than max (${length} vs. ${this.limits.maxRequestBytes})`,
        );
      }
      if (buf.length - at < FRAME_PREFIX_BYTES + length) {
        this.needed = FRAME_PREFIX_BYTES + length;
        break;
      }
      const message = buf.subarray(at + FRAME_PREFIX_BYTES, at + FRAME_PREFIX_BYTES + length);
      at += FRAME_PREFIX_BYTES + length;
      let request: Req;
      try {
        request = this.method.definition.requestDeserialize(message);
      } catch {
        return this.fail(status.INTERNAL, "Error deserializing request");
      }
      this.tell("data", request);
    }
    if (buf !== null && buf.length - at < FRAME_PREFIX_BYTES) this.needed = FRAME_PREFIX_BYTES;
    if (buf !== null) buf = at === buf.length ? null : buf.subarray(at);
    this.partial = buf;
    if (!this.halfClosed || this.paused || this.finished) return;
    if (buf !== null) return this.fail(status.INTERNAL, "The request stream ended inside a message");
    this.halfClosed = false; // once
    this.tell("end");
  }

  /** Emits an event to the handler; a handler that throws fails the call instead of the process. */
  private tell(event: string, ...args: unknown[]): void {
    try {
      this.emit(event, ...args);
    } catch {
      this.fail(status.UNKNOWN, "Server method handler threw an error");
    }
  }

  private startDeadline(header: string): void {
    const match = TIMEOUT.exec(header);
    if (match === null) return this.fail(status.INTERNAL, `Invalid grpc-timeout value "${header}"`);
    const ms = Number(match[1]) * TIMEOUT_UNIT_MS[match[2]!]!;
    if (ms > MAX_TIMER_MS) return;
    this.deadline = setTimeout(() => {
      this.fail(status.DEADLINE_EXCEEDED, "Deadline exceeded");
      this.cancel();
    }, ms);
  }

  private clearDeadline(): void {
    if (this.deadline !== null) clearTimeout(this.deadline);
    this.deadline = null;
  }

  private cancel(): void {
    if (this.cancelled) return;
    this.cancelled = true;
    this.tell("cancelled");
  }

  private onClose(): void {
    this.clearDeadline();
    this.finished = true;
    // Closed before its status was sent: the client cancelled or went away. (A client's reset
    // can come after its half-close, which the handler may have answered with end() already.)
    if (!this.statusSent) this.cancel();
    this.partial = null;
    this.more = [];
    this.tell("close");
  }
}
