/**
 * Responses framed in place (src/serve/message-framing.ts): grpc-js sends a framed message's own
 * bytes, and every other message as before, over a real grpc-js server and client on loopback.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import {
  Server,
  ServerCredentials,
  credentials,
  makeGenericClientConstructor,
  Metadata,
  type Client,
  type ServerDuplexStream,
  type ServerUnaryCall,
  type sendUnaryData,
} from "@grpc/grpc-js";
import { FRAME_PREFIX_BYTES, frameMessage, installMessageFraming } from "../../src/serve/message-framing.js";
import { RAW_CODEC } from "../../src/bench/raw-methods.js";

const definition = {
  Echo: { path: "/test.Framing/Echo", requestStream: true, responseStream: true, ...RAW_CODEC },
  Fill: { path: "/test.Framing/Fill", requestStream: false, responseStream: false, ...RAW_CODEC },
};
type EchoClient = Client & {
  Echo(md: Metadata): NodeJS.ReadWriteStream & { write(b: Buffer): boolean };
  Fill(req: Buffer, cb: (err: Error | null, res?: Buffer) => void): void;
};

/** Fill's answer to a request whose first byte is `seed`: 100 KiB, larger than a flow-control window. */
const FILL_BYTES = 100 * 1024;
const fill = (message: Buffer, seed: number): void => {
  for (let j = 0; j < message.length; j++) message[j] = (seed * 131 + j * 7) & 0xff;
};

describe("message framing", () => {
  let server: Server;
  let client: EchoClient;
  /** The frame the server last sent, reused (rewritten) once its write's callback has run. */
  const frame = Buffer.alloc(FRAME_PREFIX_BYTES + 3);
  const reused = frameMessage(frame);
  /** Fill's frames, each back here from `onSent`; a request waits while all are out. */
  const idle: Buffer[] = [];
  const waiting: Array<(message: Buffer) => void> = [];
  let sentCount = 0;
  const onSent = (message: Buffer): void => {
    sentCount++;
    const next = waiting.shift();
    if (next) next(message);
    else idle.push(message);
  };
  for (let i = 0; i < 3; i++) idle.push(frameMessage(Buffer.alloc(FRAME_PREFIX_BYTES + FILL_BYTES), onSent));

  beforeAll(async () => {
    expect(installMessageFraming()).toBe(true);
    server = new Server();
    server.addService(definition, {
      // Each request's first byte says what to answer: 1 a framed message, 2 a plain Buffer, 3 the
      // reused frame with the request's bytes, rewritten after the previous write completed.
      Echo: (call: ServerDuplexStream<Buffer, Buffer>) => {
        let previous: Promise<void> = Promise.resolve();
        call.on("data", (req: Buffer) => {
          previous = previous.then(
            () =>
              new Promise<void>((done) => {
                if (req[0] === 1) {
                  const message = frameMessage(Buffer.alloc(FRAME_PREFIX_BYTES + req.length));
                  req.copy(message);
                  call.write(message, () => done());
                } else if (req[0] === 2) {
                  call.write(Buffer.from(req), () => done());
                } else {
                  req.copy(reused, 0, 0, 3);
                  call.write(reused, () => done());
                }
              }),
          );
        });
        call.on("end", () => void previous.then(() => call.end()));
      },
      // A unary answer in one of three frames, rewritten only once onSent gave it back.
      Fill: (call: ServerUnaryCall<Buffer, Buffer>, callback: sendUnaryData<Buffer>) => {
        const answer = (message: Buffer): void => {
          fill(message, call.request[0]!);
          callback(null, message);
        };
        const message = idle.pop();
        if (message) answer(message);
        else waiting.push(answer);
      },
    });
    const port = await new Promise<number>((res, rej) =>
      server.bindAsync("127.0.0.1:0", ServerCredentials.createInsecure(), (e, p) => (e ? rej(e) : res(p))),
    );
    const Ctor = makeGenericClientConstructor(definition, "Framing");
    client = new Ctor(`127.0.0.1:${port}`, credentials.createInsecure()) as unknown as EchoClient;
  });

  afterAll(() => {
    client?.close();
    server?.forceShutdown();
  });

  it("writes the gRPC prefix in front of the message and returns the message", () => {
    const f = Buffer.alloc(FRAME_PREFIX_BYTES + 300);
    const message = frameMessage(f);
    expect(message.length).toBe(300);
    expect(message.buffer).toBe(f.buffer);
    expect(message.byteOffset).toBe(f.byteOffset + FRAME_PREFIX_BYTES);
    expect([...f.subarray(0, FRAME_PREFIX_BYTES)]).toEqual([0, 0, 0, 1, 44]);
  });

  it("delivers framed, plain and reused-frame messages byte for byte, in order", async () => {
    const requests: Buffer[] = [];
    for (let i = 0; i < 300; i++) {
      const kind = 1 + (i % 3);
      const body = Buffer.alloc(kind === 3 ? 3 : 1 + ((i * 7919) % 70_000));
      for (let j = 0; j < body.length; j++) body[j] = (i + j * 31) & 0xff;
      body[0] = kind;
      requests.push(body);
    }
    const call = client.Echo(new Metadata());
    const received: Buffer[] = [];
    const ended = new Promise<void>((res, rej) => {
      call.on("data", (b: Buffer) => received.push(Buffer.from(b)));
      call.on("end", res);
      call.on("error", rej);
    });
    for (const r of requests) call.write(r);
    call.end();
    await ended;
    expect(received.length).toBe(requests.length);
    requests.forEach((r, i) => expect(received[i]!.equals(r), `response ${i}`).toBe(true));
  });

  it("calls onSent once a unary answer is sent: frames reused from it arrive intact", async () => {
    const calls = 120;
    const call = (seed: number): Promise<Buffer> =>
      new Promise((res, rej) => client.Fill(Buffer.from([seed]), (e, b) => (e ? rej(e) : res(b!))));
    // Six calls in flight over three frames: each frame is rewritten as soon as it comes back.
    const answers: Buffer[] = [];
    let next = 0;
    await Promise.all(
      Array.from({ length: 6 }, async () => {
        while (next < calls) {
          const seed = next++ % 256;
          const got = await call(seed);
          const want = Buffer.alloc(FILL_BYTES);
          fill(want, seed);
          expect(got.equals(want), `answer to seed ${seed}`).toBe(true);
          answers.push(got);
        }
      }),
    );
    expect(answers.length).toBe(calls);
    await expect.poll(() => sentCount).toBe(calls);
  });
});
