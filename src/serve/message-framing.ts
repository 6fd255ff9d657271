/**
 * Responses framed where they are encoded. grpc-js frames every message it sends by copying it
 * into a new buffer behind the 5-byte gRPC prefix (`BaseServerInterceptingCall.serializeMessage`).
 * For our responses (tens of KiB) that copy, and the new ArrayBuffer per message whose external
 * memory kept V8 collecting, took about a third of the server's CPU (docs/decisions.md, 17). So
 * the response encoder leaves room for the prefix in front of each response and writes it there
 * (`frameMessage`), and `serializeMessage` is wrapped to hand such a message's frame to HTTP/2 as
 * it is; every other message (errors, version events, health) goes through grpc-js's own code.
 *
 * The frame is then what HTTP/2 sends, not a copy: its bytes may be reused only after the stream
 * write's callback, which Node calls once the socket write is done. `sendMessage` is wrapped too,
 * so that a framed message's `onSent` runs then, for a unary answer as for a stream write (grpc-js
 * tells a unary handler nothing once it has answered). A message that is never sent (the call was
 * cancelled, the write failed) never calls it.
 *
 * This reaches into grpc-js: a class its package does not export, a method it does not document.
 * A grpc-js without them still works, with the copy (and no `onSent`): `installMessageFraming`
 * returns false, the server logs it, and test/system/message-framing.test.ts fails, so that an
 * upgrade notices.
 */
import { createRequire } from "node:module";

export const FRAME_PREFIX_BYTES = 5;

/** Called with a framed message once HTTP/2 is done with its bytes. */
export type OnSent = (message: Buffer) => void;

export interface Framed {
  readonly frame: Buffer;
  readonly onSent: OnSent | undefined;
}

/**
 * Where `frameMessage` leaves a message's framing: on the message itself. A WeakMap entry per
 * message made every response an ephemeron for the scavenger (about 2% of the server's CPU).
 */
const FRAMING = Symbol("strata.framing");
type FramedMessage = Buffer & { [FRAMING]?: Framed };

/**
 * Writes the gRPC prefix (not compressed; the message length) at the start of `frame` and returns
 * the message: the bytes after it, to be filled in before it is sent. `onSent` runs each time the
 * message has been sent.
 */
export function frameMessage(frame: Buffer, onSent?: OnSent): Buffer {
  writePrefix(frame);
  const message: FramedMessage = frame.subarray(FRAME_PREFIX_BYTES);
  message[FRAMING] = { frame, onSent };
  return message;
}

/** A message that was not encoded behind room for its prefix, framed by copying it (grpc-js's way). */
export function copyIntoFrame(message: Buffer): Buffer {
  const frame = Buffer.allocUnsafe(FRAME_PREFIX_BYTES + message.length);
  writePrefix(frame);
  message.copy(frame, FRAME_PREFIX_BYTES);
  return frame;
}

/** The gRPC prefix at the start of `frame`: not compressed, then the length of the message after it. */
function writePrefix(frame: Buffer): void {
  frame[0] = 0;
  frame.writeUInt32BE(frame.length - FRAME_PREFIX_BYTES, 1);
}

/** The frame of a message `frameMessage` made, and what to call once it is sent; undefined for any other value. */
export const framingOf = (value: unknown): Framed | undefined =>
  value instanceof Uint8Array ? (value as FramedMessage)[FRAMING] : undefined;

type SerializeMessage = (this: unknown, value: unknown) => Buffer;
type SendMessage = (this: unknown, value: unknown, callback: (...args: unknown[]) => void) => void;
let installed: boolean | null = null;

/** Makes grpc-js send framed messages without copying them (once per process); false if it cannot. */
export function installMessageFraming(): boolean {
  if (installed !== null) return installed;
  installed = false;
  try {
    const internals = createRequire(import.meta.url)("@grpc/grpc-js/build/src/server-interceptors.js") as {
      BaseServerInterceptingCall?: {
        prototype: { serializeMessage?: SerializeMessage; sendMessage?: SendMessage };
      };
    };
    const prototype = internals.BaseServerInterceptingCall?.prototype;
    const serialize = prototype?.serializeMessage;
    const send = prototype?.sendMessage;
    if (prototype === undefined || typeof serialize !== "function" || typeof send !== "function")
      return false;
    prototype.serializeMessage = function (this: unknown, value: unknown): Buffer {
      return framingOf(value)?.frame ?? serialize.call(this, value);
    };
    // Its callback runs once the HTTP/2 stream's write is done (and never if the write failed).
    prototype.sendMessage = function (this: unknown, value: unknown, callback): void {
      const onSent = framingOf(value)?.onSent;
      if (onSent === undefined) return send.call(this, value, callback);
      send.call(this, value, (...args) => {
        onSent(value as Buffer);
        callback(...args);
      });
    };
    installed = true;
  } catch {
    // grpc-js moved its internals: keep its copying serializer.
  }
  return installed;
}
