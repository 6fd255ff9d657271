/**
 * Responses framed where they are encoded. grpc-js frames every message it sends by copying it
 * into a new buffer behind the 5-byte gRPC prefix (`BaseServerInterceptingCall.serializeMessage`).
 * For our responses (tens of KiB) that copy, and the new ArrayBuffer per message whose external
 * memory kept V8 collecting, took about a third of the server's CPU (docs/decisions.md, 17). So
 * the response encoder leaves room for the prefix in front of each response and writes it there
 * (`frameMessage`), and `serializeMessage` is wrapped to hand such a message's frame to HTTP/2 as
 * it is; every other message (errors, version events, health) goes through grpc-js's own code.
 *
 * The frame is then what HTTP/2 sends, not a copy: the encoder may reuse its bytes only after the
 * stream write's callback, which Node calls once the socket write is done (feature-service.ts).
 *
 * This reaches into grpc-js: a class its package does not export, a method it does not document.
 * A grpc-js without them still works, with the copy: `installMessageFraming` returns false, the
 * server logs it, and test/system/message-framing.test.ts fails, so that an upgrade notices.
 */
import { createRequire } from "node:module";

export const FRAME_PREFIX_BYTES = 5;

/** Message → its frame, for the messages `frameMessage` made. */
const frames = new WeakMap<object, Buffer>();

/**
 * Writes the gRPC prefix (not compressed; the message length) at the start of `frame` and returns
 * the message: the bytes after it, to be filled in before it is sent.
 */
export function frameMessage(frame: Buffer): Buffer {
  frame[0] = 0;
  frame.writeUInt32BE(frame.length - FRAME_PREFIX_BYTES, 1);
  const message = frame.subarray(FRAME_PREFIX_BYTES);
  frames.set(message, frame);
  return message;
}

type SerializeMessage = (this: unknown, value: unknown) => Buffer;
let installed: boolean | null = null;

/** Makes grpc-js send framed messages without copying them (once per process); false if it cannot. */
export function installMessageFraming(): boolean {
  if (installed !== null) return installed;
  installed = false;
  try {
    const internals = createRequire(import.meta.url)("@grpc/grpc-js/build/src/server-interceptors.js") as {
      BaseServerInterceptingCall?: { prototype: { serializeMessage?: SerializeMessage } };
    };
    const prototype = internals.BaseServerInterceptingCall?.prototype;
    const original = prototype?.serializeMessage;
    if (prototype === undefined || typeof original !== "function") return false;
    prototype.serializeMessage = function (this: unknown, value: unknown): Buffer {
      return (typeof value === "object" && value !== null && frames.get(value)) || original.call(this, value);
    };
    installed = true;
  } catch {
    // grpc-js moved its internals: keep its copying serializer.
  }
  return installed;
}
