/**
 * Bidirectional calls served straight on HTTP/2 (src/serve/direct-bidi.ts), over a real grpc-js
 * server and real grpc-js clients on loopback, and a bare HTTP/2 client for what grpc-js clients
 * never send. The handler is written as for grpc-js: what a client sees must not tell them apart.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { readFileSync } from "node:fs";
import { connect, type ClientHttp2Session } from "node:http2";
import { resolve } from "node:path";
import {
  Server,
  ServerCredentials,
  credentials,
  makeGenericClientConstructor,
  Metadata,
  status,
  type Client,
  type ServiceError,
} from "@grpc/grpc-js";
import {
  serveDirectly,
  unaryAsBidi,
  type BidiCall,
  type UnaryCall,
  type UnaryCallback,
} from "../../src/serve/direct-bidi.js";
import { FRAME_PREFIX_BYTES, frameMessage, installMessageFraming } from "../../src/serve/message-framing.js";
import { RAW_CODEC } from "../../src/bench/raw-methods.js";

const ECHO = { path: "/test.Direct/Echo", requestStream: true, responseStream: true, ...RAW_CODEC };
const TWICE = { path: "/test.Direct/Twice", requestStream: false, responseStream: false, ...RAW_CODEC };
type Duplex = NodeJS.ReadWriteStream & { write(b: Buffer): boolean; cancel(): void };
type EchoClient = Client & {
  Echo(md: Metadata, options?: { deadline?: number }): Duplex;
  Twice(req: Buffer, md: Metadata, cb: (err: ServiceError | null, res?: Buffer) => void): void;
};

/** Twice, a unary method served through unaryAsBidi: the request twice, or an error if it is empty. */
const twice = (call: UnaryCall<Buffer>, callback: UnaryCallback<Buffer>): void => {
  if (call.request.length === 0) return callback({ code: status.OUT_OF_RANGE, details: "empty" });
  const message = frameMessage(Buffer.alloc(FRAME_PREFIX_BYTES + 2 * call.request.length));
  call.request.copy(message);
  call.request.copy(message, call.request.length);
  callback(null, message);
};

const MAX_REQUEST = 256 * 1024;
const BIG = 300 * 1024; // a response larger than the 1 MiB queue bound's quarter, for backpressure

/** What the handler saw, per call, for the tests to look at. */
interface Seen {
  direct: boolean;
  requests: number;
  events: string[];
  authorization: string | undefined;
}
const seen: Seen[] = [];

/**
 * Echo: each request's first byte says what to answer. 1: the request back, framed in place;
 * 2: the request back as a plain Buffer; 3: 40 answers of BIG bytes (for backpressure);
 * 4: fail the call with FAILED_PRECONDITION and a trailer; 5: throw.
 */
function echo(call: BidiCall<Buffer, Buffer>): void {
  const s: Seen = {
    direct: !("getPeer" in call),
    requests: 0,
    events: [],
    authorization: call.metadata.get("authorization")[0] as string | undefined,
  };
  seen.push(s);
  let paused = false;
  const write = (b: Buffer): void => {
    if (!call.write(b) && !paused) {
      paused = true;
      s.events.push(`pause@${s.requests}`);
      call.pause();
      call.once("drain", () => {
        paused = false;
        s.events.push("resume");
        call.resume();
      });
    }
  };
  call.on("data", (req: Buffer) => {
    s.requests++;
    if (req[0] === 1) {
      const message = frameMessage(Buffer.alloc(FRAME_PREFIX_BYTES + req.length));
      req.copy(message);
      write(message);
    } else if (req[0] === 2) {
      write(Buffer.from(req));
    } else if (req[0] === 3) {
      for (let i = 0; i < 40; i++) write(Buffer.alloc(BIG, i));
    } else if (req[0] === 4) {
      const trailer = new Metadata();
      trailer.set("strata-error-code", "STRATA_TABLE_PINNED");
      call.emit("error", {
        code: status.FAILED_PRECONDITION,
        details: "pinned: 100% sure",
        metadata: trailer,
      });
    } else {
      throw new Error("handler bug");
    }
  });
  call.on("end", () => (s.events.push("end"), call.end()));
  call.on("cancelled", () => s.events.push("cancelled"));
  call.on("close", () => s.events.push("close"));
}

describe("direct bidi calls", () => {
  let server: Server;
  let port: number;
  let client: EchoClient;
  let gzipClient: EchoClient;
  const Ctor = makeGenericClientConstructor({ Echo: ECHO, Twice: TWICE }, "Direct");

  beforeAll(async () => {
    expect(installMessageFraming()).toBe(true);
    server = new Server({ "grpc.max_receive_message_length": MAX_REQUEST });
    server.addService({ Echo: ECHO }, { Echo: echo });
    server.addService({ Twice: TWICE }, { Twice: twice });
    expect(
      serveDirectly(
        server,
        [
          { definition: ECHO, handler: echo },
          { definition: TWICE, handler: unaryAsBidi(twice) },
        ],
        { maxRequestBytes: MAX_REQUEST, maxResponseBytes: 4 << 20 },
      ),
    ).toBe(true);
    port = await new Promise<number>((res, rej) =>
      server.bindAsync("127.0.0.1:0", ServerCredentials.createInsecure(), (e, p) => (e ? rej(e) : res(p))),
    );
    client = new Ctor(`127.0.0.1:${port}`, credentials.createInsecure()) as unknown as EchoClient;
    // grpc-js compresses every request with this: such calls are left to grpc-js.
    gzipClient = new Ctor(`127.0.0.1:${port}`, credentials.createInsecure(), {
      "grpc.default_compression_algorithm": 2,
    }) as unknown as EchoClient;
  });

  afterAll(() => {
    client?.close();
    gzipClient?.close();
    server?.forceShutdown();
  });

  /** Sends `requests`, half-closes, and collects the answers and how the call ended. */
  async function exchange(
    c: EchoClient,
    requests: Buffer[],
    md = new Metadata(),
  ): Promise<{ answers: Buffer[]; error: ServiceError | null; trailers: Metadata | null }> {
    const call = c.Echo(md);
    const answers: Buffer[] = [];
    let trailers: Metadata | null = null;
    const error = await new Promise<ServiceError | null>((res) => {
      call.on("data", (b: Buffer) => answers.push(Buffer.from(b)));
      call.on("status", (s: { metadata: Metadata }) => (trailers = s.metadata));
      call.on("end", () => res(null));
      call.on("error", (e: ServiceError) => res(e));
      for (const r of requests) call.write(r);
      call.end();
    });
    return { answers, error, trailers };
  }

  const request = (kind: number, length: number, seed: number): Buffer => {
    const b = Buffer.alloc(length);
    for (let j = 0; j < length; j++) b[j] = (seed + j * 31) & 0xff;
    b[0] = kind;
    return b;
  };

  it("answers every request in order, byte for byte, across DATA frames, and ends OK", async () => {
    // Up to 200 KiB a request: many are split across HTTP/2 DATA frames (16 KiB), and many share one.
    const requests = Array.from({ length: 400 }, (_, i) =>
      request(1 + (i % 2), i % 10 === 0 ? 200_000 : 1 + ((i * 7919) % 3000), i),
    );
    const before = seen.length;
    const md = new Metadata();
    md.set("authorization", "Bearer t0ken");
    const { answers, error } = await exchange(client, requests, md);
    expect(error).toBeNull();
    expect(answers.length).toBe(requests.length);
    requests.forEach((r, i) => expect(answers[i]!.equals(r), `answer ${i}`).toBe(true));
    const s = seen[before]!;
    expect(s).toMatchObject({ direct: true, requests: 400, authorization: "Bearer t0ken" });
    expect(s.events).toEqual(["end", "close"]);
  });

  it("serves calls over TLS the same way", async () => {
    const [cert, key] = ["cert.pem", "key.pem"].map((f) => readFileSync(resolve("test/fixtures/tls", f)));
    const tlsServer = new Server();
    tlsServer.addService({ Echo: ECHO }, { Echo: echo });
    serveDirectly(tlsServer, [{ definition: ECHO, handler: echo }], {
      maxRequestBytes: MAX_REQUEST,
      maxResponseBytes: 4 << 20,
    });
    const tlsPort = await new Promise<number>((res, rej) =>
      tlsServer.bindAsync(
        "127.0.0.1:0",
        ServerCredentials.createSsl(null, [{ cert_chain: cert!, private_key: key! }], false),
        (e, p) => (e ? rej(e) : res(p)),
      ),
    );
    const tlsClient = new Ctor(`127.0.0.1:${tlsPort}`, credentials.createSsl(cert)) as unknown as EchoClient;
    try {
      const requests = Array.from({ length: 30 }, (_, i) => request(1, 100 + i * 1000, i));
      const before = seen.length;
      const { answers, error } = await exchange(tlsClient, requests);
      expect(error).toBeNull();
      requests.forEach((r, i) => expect(answers[i]!.equals(r), `answer ${i}`).toBe(true));
      expect(seen[before]!.direct).toBe(true);
    } finally {
      tlsClient.close();
      tlsServer.forceShutdown();
    }
  });

  it("serves a unary method as a call of one message each way, compressed or not", async () => {
    const call = (c: EchoClient, req: Buffer): Promise<Buffer> =>
      new Promise((res, rej) => c.Twice(req, new Metadata(), (e, b) => (e ? rej(e) : res(b!))));
    for (const c of [client, gzipClient]) {
      const answers = await Promise.all(
        Array.from({ length: 50 }, (_, i) => call(c, request(9, 1 + i * 500, i))),
      );
      answers.forEach((a, i) => {
        const r = request(9, 1 + i * 500, i);
        expect(a.equals(Buffer.concat([r, r])), `answer ${i}`).toBe(true);
      });
      await expect(call(c, Buffer.alloc(0))).rejects.toMatchObject({
        code: status.OUT_OF_RANGE,
        details: "empty",
      });
    }
  });

  it("declines a grpc-js server without the per-stream handlers it wraps", () => {
    expect(serveDirectly({} as Server, [], { maxRequestBytes: 1, maxResponseBytes: 1 })).toBe(false);
  });

  it("leaves calls with compressed requests to grpc-js, which answers them the same", async () => {
    const requests = Array.from({ length: 50 }, (_, i) => request(1 + (i % 2), 500 + i, i));
    const before = seen.length;
    const { answers, error } = await exchange(gzipClient, requests);
    expect(error).toBeNull();
    requests.forEach((r, i) => expect(answers[i]!.equals(r), `answer ${i}`).toBe(true));
    expect(seen[before]!.direct).toBe(false);
  });

  it("ends a call with the status, details and trailers of an emitted error, after its answers", async () => {
    const { answers, error } = await exchange(client, [
      request(1, 20, 1),
      request(4, 1, 0),
      request(1, 20, 2),
    ]);
    expect(answers.length).toBe(1);
    expect(error?.code).toBe(status.FAILED_PRECONDITION);
    expect(error?.details).toBe("pinned: 100% sure");
    expect(error?.metadata.get("strata-error-code")).toEqual(["STRATA_TABLE_PINNED"]);
    // Before any answer, the status goes in the response headers (trailers-only): the same to a client.
    const first = await exchange(client, [request(4, 1, 0)]);
    expect(first.answers.length).toBe(0);
    expect(first.error?.code).toBe(status.FAILED_PRECONDITION);
    expect(first.error?.metadata.get("strata-error-code")).toEqual(["STRATA_TABLE_PINNED"]);
  });

  it("answers UNKNOWN when the handler throws, and RESOURCE_EXHAUSTED for a request over the limit", async () => {
    const thrown = await exchange(client, [request(5, 1, 0)]);
    expect(thrown.error?.code).toBe(status.UNKNOWN);
    const big = await exchange(client, [request(1, 10, 0), request(1, MAX_REQUEST + 1, 0)]);
    expect(big.answers.length).toBe(1);
    expect(big.error?.code).toBe(status.RESOURCE_EXHAUSTED);
    expect(big.error?.details).toMatch(/larger than max/);
  });

  it("ends a call at its deadline with DEADLINE_EXCEEDED, and the handler hears it was cancelled", async () => {
    const before = seen.length;
    const call = client.Echo(new Metadata(), { deadline: Date.now() + 300 });
    const answers: Buffer[] = [];
    const error = await new Promise<ServiceError>((res) => {
      call.on("data", (b: Buffer) => answers.push(b));
      call.on("error", res);
      call.write(request(1, 8, 0));
    });
    expect(answers.length).toBe(1);
    expect(error.code).toBe(status.DEADLINE_EXCEEDED);
    await expect.poll(() => seen[before]?.events).toContain("cancelled");
  });

  it("tells the handler when the client cancels", async () => {
    const before = seen.length;
    const call = client.Echo(new Metadata());
    call.on("error", () => {});
    call.write(request(1, 8, 0));
    await new Promise((res) => call.once("data", res));
    call.cancel();
    await expect.poll(() => seen[before]?.events.at(-1)).toBe("close");
    expect(seen[before]!.events).toContain("cancelled");
  });

  describe("from a bare HTTP/2 client", () => {
    let session: ClientHttp2Session;
    beforeAll(() => void (session = connect(`http://127.0.0.1:${port}`)));
    afterAll(() => session?.close());

    /** One call from a bare HTTP/2 client: the answers' bytes and the grpc-status it ended with. */
    const bare = (headers: Record<string, string>, body: Buffer): Promise<{ data: Buffer; status: string }> =>
      new Promise((res, rej) => {
        const req = session.request({
          ":method": "POST",
          ":path": ECHO.path,
          "content-type": "application/grpc",
          te: "trailers",
          ...headers,
        });
        const chunks: Buffer[] = [];
        let grpcStatus = "";
        req.on("response", (h) => (grpcStatus = String(h["grpc-status"] ?? "")));
        req.on("trailers", (t) => (grpcStatus = String(t["grpc-status"])));
        req.on("data", (c: Buffer) => chunks.push(c));
        req.on("end", () => res({ data: Buffer.concat(chunks), status: grpcStatus }));
        req.on("error", rej);
        req.end(body);
      });
    const framed = (flag: number, message: Buffer): Buffer => {
      const prefix = Buffer.alloc(FRAME_PREFIX_BYTES);
      prefix[0] = flag;
      prefix.writeUInt32BE(message.length, 1);
      return Buffer.concat([prefix, message]);
    };

    it("stops reading while the client does not read, and then answers everything", async () => {
      const before = seen.length;
      const req = session.request({
        ":method": "POST",
        ":path": ECHO.path,
        "content-type": "application/grpc",
        te: "trailers",
      });
      // Three requests of 40 answers of 300 KiB (36 MiB), nothing read: far beyond the stream's
      // flow-control window and the server's queue bound.
      req.end(Buffer.concat([0, 1, 2].map((i) => framed(0, request(3, 10, i)))));
      await expect.poll(() => seen[before]?.events).toContain("pause@1");
      await new Promise((res) => setTimeout(res, 200));
      expect(seen[before]!.requests).toBe(1); // the other two wait in the client's window
      let bytes = 0;
      let grpcStatus = "";
      req.on("trailers", (t) => (grpcStatus = String(t["grpc-status"])));
      req.on("data", (c: Buffer) => (bytes += c.length));
      await new Promise((res) => req.on("end", res));
      expect(grpcStatus).toBe(String(status.OK));
      expect(bytes).toBe(120 * (FRAME_PREFIX_BYTES + BIG));
      const s = seen[before]!;
      expect(s.requests).toBe(3);
      expect(s.events.filter((e) => e.startsWith("pause")).length).toBe(
        s.events.filter((e) => e === "resume").length,
      );
      expect(s.events.slice(-2)).toEqual(["end", "close"]);
    });

    it("answers a plain call like grpc-js: framed answers, then grpc-status 0", async () => {
      const r = await bare({}, Buffer.concat([framed(0, request(2, 3, 7)), framed(0, request(1, 4, 8))]));
      expect(r.status).toBe(String(status.OK));
      expect(r.data.equals(Buffer.concat([framed(0, request(2, 3, 7)), framed(0, request(1, 4, 8))]))).toBe(
        true,
      );
    });

    it("refuses a compressed message on a call that named no encoding, and a malformed grpc-timeout", async () => {
      const compressed = await bare({}, framed(1, request(1, 4, 0)));
      expect(compressed.status).toBe(String(status.INTERNAL));
      const timeout = await bare({ "grpc-timeout": "soon" }, framed(0, request(1, 4, 0)));
      expect(timeout.status).toBe(String(status.INTERNAL));
      expect(timeout.data.length).toBe(0);
      // Half a message, then the end of the stream.
      const cut = await bare(
        {},
        Buffer.concat([framed(0, request(1, 4, 0)), framed(0, request(1, 9, 0)).subarray(0, 8)]),
      );
      expect(cut.status).toBe(String(status.INTERNAL));
      expect(cut.data.equals(framed(0, request(1, 4, 0)))).toBe(true);
    });

    it("refuses a unary call with no request or two, as grpc-js does", async () => {
      const path = { ":path": TWICE.path };
      expect((await bare(path, Buffer.alloc(0))).status).toBe(String(status.UNIMPLEMENTED));
      const two = await bare(path, Buffer.concat([framed(0, request(9, 3, 0)), framed(0, request(9, 3, 1))]));
      expect(two.status).toBe(String(status.UNIMPLEMENTED));
      const one = await bare(path, framed(0, request(9, 3, 0)));
      expect(one.status).toBe(String(status.OK));
      expect(one.data.equals(framed(0, Buffer.concat([request(9, 3, 0), request(9, 3, 0)])))).toBe(true);
    });

    it("takes a deadline beyond what a timer holds (99999999 hours) as none", async () => {
      const r = await bare({ "grpc-timeout": "99999999H" }, framed(0, request(2, 5, 3)));
      expect(r.status).toBe(String(status.OK));
      expect(r.data.equals(framed(0, request(2, 5, 3)))).toBe(true);
    });
  });
});
