import { afterAll, beforeAll, describe, expect, it } from "vitest";
import {
  credentials,
  makeGenericClientConstructor,
  Metadata,
  status,
  loadPackageDefinition,
  type ServiceError,
} from "@grpc/grpc-js";
import { loadSync } from "@grpc/proto-loader";
import { createRequire } from "node:module";
import { startHarness, userRow, type Harness } from "../helpers/served-table.js";
import { decodeRow, rowLayout } from "../../src/format/row-layout.js";
import { loadFeatureStoreProto } from "../../src/serve/proto.js";
import { createStrataClient } from "../../src/client/index.js";

const N = 2000;

describe("FeatureStore over gRPC", () => {
  let h: Harness;
  beforeAll(async () => {
    h = await startHarness({ seed: Array.from({ length: N }, (_, i) => userRow(i)) });
  });
  afterAll(() => h.close());

  it("GetFeatures returns exactly the imported values, in request order, with per-row status", async () => {
    expect(h.server.transport).toBe("direct"); // decision 32, unless STRATA_GRPC_DIRECT=0
    const keys = ["user:11", "nope", "user:3", "user:0", "user:1999"];
    const res = await h.client.getFeatures({ table: "users", keys, request_id: "18446744073709551615" });
    expect(res.request_id).toBe("18446744073709551615");
    expect(res.version).toBe(1);
    expect(res.features).toEqual(["age", "country", "premium", "ltv", "ctr", "emb", "blob"]);
    expect(res.rows.map((r) => [r.key, r.status])).toEqual([
      ["user:11", "ROW_STATUS_FOUND"],
      ["nope", "ROW_STATUS_NOT_FOUND"],
      ["user:3", "ROW_STATUS_FOUND"],
      ["user:0", "ROW_STATUS_FOUND"],
      ["user:1999", "ROW_STATUS_FOUND"],
    ]);
    const [u11, , u3] = res.rows;
    expect(u11!.values).toEqual([
      "1",
      null,
      false,
      16.5,
      Math.fround(11 / 8),
      [11, 1, -11, Math.fround(0.1)],
      Buffer.from([11, 1, 2]),
    ]);
    expect(u3!.values).toEqual([
      "1",
      "c3",
      false,
      4.5,
      Math.fround(3 / 8),
      [3, 1, -3, Math.fround(0.1)],
      null,
    ]);
    expect(u3!.event_time_ms).toBe(1_700_000_000_003);
  });

  it("serves a feature subset and the PACKED row layout", async () => {
    const sub = await h.client.getFeatures({ table: "users", keys: ["user:5"], features: ["emb", "age"] });
    expect(sub.features).toEqual(["emb", "age"]);
    expect(sub.rows[0]!.values).toEqual([[5, 1, -5, Math.fround(0.1)], "1"]);
    const packed = await h.client.getFeatures({
      table: "users",
      keys: ["user:5"],
      encoding: "ENCODING_PACKED",
    });
    const values = decodeRow(rowLayout(h.schema), packed.rows[0]!.packed);
    expect(values).toEqual(userRow(5).values);
  });

  it("StreamFeatures answers every request with its request_id, and errors in-band", async () => {
    const stream = h.client.openStream();
    const answers = await Promise.all(
      Array.from({ length: 50 }, (_, i) => stream.send({ table: "users", keys: [`user:${i}`] })),
    );
    answers.forEach((a, i) => expect(a.rows[0]!.values[3]).toBe(i * 1.5));
    // In band on the wire (error_code, error_message); the typed client rejects that one request.
    await expect(stream.send({ table: "nope", keys: ["x"] })).rejects.toMatchObject({
      code: status.NOT_FOUND,
      details: expect.stringMatching(/nope/),
    });
    const after = await stream.send({ table: "users", keys: ["user:7"] });
    expect(after.rows[0]!.status).toBe("ROW_STATUS_FOUND");
    stream.close();
  });

  it("GetFeatures and StreamFeatures answer clients that compress their requests (served through grpc-js) the same", async () => {
    type Stream = NodeJS.ReadWriteStream & { write(req: object): boolean };
    const Service = (
      loadPackageDefinition(loadFeatureStoreProto()) as never as {
        strata: { v1: { FeatureStore: new (address: string, c: unknown, o?: object) => unknown } };
      }
    ).strata.v1.FeatureStore;
    const exchange = async (options: object): Promise<object[]> => {
      const client = new Service(h.address, credentials.createInsecure(), options) as {
        StreamFeatures(): Stream;
        close(): void;
      };
      const call = client.StreamFeatures();
      const answers: object[] = [];
      await new Promise((res, rej) => {
        call.on("data", (a: object) => answers.push(a));
        call.on("end", res);
        call.on("error", rej);
        for (let i = 0; i < 20; i++)
          call.write({ table: "users", keys: [`user:${i}`, "nope"], request_id: i });
        call.write({ table: "nope", keys: ["x"], request_id: 99 });
        call.end();
      });
      client.close();
      return answers;
    };
    const plain = await exchange({});
    expect(plain.length).toBe(21);
    expect(plain[20]).toMatchObject({ request_id: "99", error_code: status.NOT_FOUND });
    const unary = (options: object): Promise<object> => {
      const client = new Service(h.address, credentials.createInsecure(), options) as {
        GetFeatures(req: object, cb: (e: Error | null, r: object) => void): void;
        close(): void;
      };
      return new Promise((res, rej) =>
        client.GetFeatures(
          { table: "users", keys: ["user:3", "nope"] },
          (e, r) => (client.close(), e ? rej(e) : res(r)),
        ),
      );
    };
    const plainUnary = await unary({});
    expect(plainUnary).toMatchObject({ rows: [{ key: "user:3" }, { key: "nope" }] });
    // gzip (2) and deflate (1), as grpc-js clients send them.
    for (const algorithm of [1, 2]) {
      expect(await exchange({ "grpc.default_compression_algorithm": algorithm })).toEqual(plain);
      expect(await unary({ "grpc.default_compression_algorithm": algorithm })).toEqual(plainUnary);
    }
  });

  it("the client gives up on a request at its deadline, unary or on a stream, and the stream goes on", async () => {
    await expect(
      h.client.getFeatures({ table: "users", keys: ["user:1"], deadlineMs: 0 }),
    ).rejects.toMatchObject({
      code: status.DEADLINE_EXCEEDED,
    });
    const stream = h.client.openStream();
    const late = stream.send({ table: "users", keys: ["user:1"], deadlineMs: 5 });
    // The event loop runs its timers before it reads the socket: the answer cannot come first.
    const until = Date.now() + 20;
    while (Date.now() < until);
    await expect(late).rejects.toMatchObject({ code: status.DEADLINE_EXCEEDED });
    const next = await stream.send({ table: "users", keys: ["user:2"], deadlineMs: 5_000 });
    expect(next.rows[0]!.key).toBe("user:2");
    stream.close();
  });

  it("ScanTable streams every row once, in chunks", async () => {
    const seen = new Map<string, number>();
    let chunks = 0;
    for await (const rows of h.client.scanTable("users", { chunkRows: 300, features: ["ltv"] })) {
      chunks++;
      for (const r of rows) seen.set(r.key, r.values[0] as number);
    }
    expect(chunks).toBe(Math.ceil(N / 300));
    expect(seen.size).toBe(N);
    for (let i = 0; i < N; i += 97) expect(seen.get(`user:${i}`)).toBe(i * 1.5);
  });

  it("ListTables and DescribeTable describe schema, versions and freshness", async () => {
    const tables = await h.client.listTables();
    expect(tables.map((t) => t.name)).toEqual(["users"]);
    const d = await h.client.describeTable("users");
    expect(d).toMatchObject({
      name: "users",
      key: "user_id",
      serving_version: "1",
      current_version: "1",
      pinned: false,
    });
    expect((d.versions as unknown[]).length).toBe(1);
  });

  it("maps bad requests to status codes and keeps serving", async () => {
    const code = (p: Promise<unknown>) =>
      p.then(
        () => status.OK,
        (e: ServiceError) => e.code,
      );
    expect(await code(h.client.getFeatures({ table: "nope", keys: ["a"] }))).toBe(status.NOT_FOUND);
    expect(await code(h.client.getFeatures({ table: "users", keys: ["a"], features: ["nope"] }))).toBe(
      status.INVALID_ARGUMENT,
    );
    expect(await code(h.client.getFeatures({ table: "users", keys: [] }))).toBe(status.INVALID_ARGUMENT);
    expect(await code(h.client.getFeatures({ table: "users", keys: [""] }))).toBe(status.INVALID_ARGUMENT);
    expect(await code(h.client.getFeatures({ table: "users", keys: ["k".repeat(1025)] }))).toBe(
      status.INVALID_ARGUMENT,
    );
    // A feature list is itself, not its names joined: ["emb,age"] is no feature of the table,
    // even once ["emb", "age"] has been answered, and [""] is not "all features".
    await h.client.getFeatures({ table: "users", keys: ["a"], features: ["emb", "age"] });
    for (const features of [["emb,age"], [""]])
      expect(await code(h.client.getFeatures({ table: "users", keys: ["a"], features }))).toBe(
        status.INVALID_ARGUMENT,
      );
    // An error that quotes a huge table name back is cut to fit a trailer: the status arrives,
    // and the connection goes on serving.
    const huge = await h.client.getFeatures({ table: "x".repeat(200_000), keys: ["a"] }).then(
      () => null,
      (e: ServiceError) => e,
    );
    expect([huge?.code, huge!.details.length < 2000]).toEqual([status.NOT_FOUND, true]);
    expect(await code(h.client.describeTable("y".repeat(200_000)))).toBe(status.NOT_FOUND);
    expect(await code(h.client.getFeatures({ table: "users", keys: ["a"], version: 99 }))).toBe(
      status.NOT_FOUND,
    );
    const million = Array.from({ length: 1_000_000 }, (_, i) => `k${i}`);
    expect(await code(h.client.getFeatures({ table: "users", keys: million }))).toBe(
      status.RESOURCE_EXHAUSTED,
    );
    expect(await code(h.client.getFeatures({ table: "users", keys: million.slice(0, 10_001) }))).toBe(
      status.RESOURCE_EXHAUSTED,
    );
    // Invalid UTF-8 in a key, sent as raw bytes: table "users", key 0xff 0xfe.
    const raw = rawGetFeatures(h.address);
    const bytes = Buffer.from([0x0a, 5, ...Buffer.from("users"), 0x12, 2, 0xff, 0xfe]);
    expect(await code(raw(bytes))).toBe(status.INVALID_ARGUMENT);
    expect(await code(raw(Buffer.from([0x12, 0x80])))).toBe(status.INVALID_ARGUMENT); // truncated
    // A message that does not parse is the client's mistake on every method, not INTERNAL.
    for (const method of ["DescribeTable", "ListTables"])
      expect([
        method,
        await code(rawGetFeatures(h.address, method)(Buffer.from([0xff, 0xff, 0xff]))),
      ]).toEqual([method, status.INVALID_ARGUMENT]);
    expect((await h.client.getFeatures({ table: "users", keys: ["user:1"] })).rows[0]!.status).toBe(
      "ROW_STATUS_FOUND",
    );
  });

  it("answers health and reflection as grpcurl expects", async () => {
    const require = createRequire(import.meta.url);
    const healthProto = require.resolve("grpc-health-check/proto/health/v1/health.proto");
    const pkg = loadPackageDefinition(loadSync(healthProto, { keepCase: true, enums: String })) as never as {
      grpc: {
        health: {
          v1: {
            Health: new (
              a: string,
              c: unknown,
            ) => {
              Check(r: object, cb: (e: Error | null, r: { status: string }) => void): void;
              close(): void;
            };
          };
        };
      };
    };
    const health = new pkg.grpc.health.v1.Health(h.address, credentials.createInsecure());
    const res = await new Promise<{ status: string }>((resolve, reject) =>
      health.Check({ service: "strata.v1.FeatureStore" }, (e, r) => (e ? reject(e) : resolve(r))),
    );
    expect(res.status).toBe("SERVING");
    health.close();
    const reflection = loadPackageDefinition(
      loadSync(require.resolve("@grpc/reflection/build/proto/grpc/reflection/v1alpha/reflection.proto"), {
        keepCase: true,
      }),
    ) as never as {
      grpc: {
        reflection: {
          v1alpha: {
            ServerReflection: new (
              a: string,
              c: unknown,
            ) => {
              ServerReflectionInfo(): NodeJS.ReadWriteStream & { write(o: object): void; end(): void };
              close(): void;
            };
          };
        };
      };
    };
    const r = new reflection.grpc.reflection.v1alpha.ServerReflection(
      h.address,
      credentials.createInsecure(),
    );
    const call = r.ServerReflectionInfo();
    const listed = new Promise<string[]>((resolve) =>
      call.on("data", (m: { list_services_response?: { service: { name: string }[] } }) =>
        resolve(m.list_services_response!.service.map((s) => s.name)),
      ),
    );
    call.write({ list_services: "*" });
    expect(await listed).toEqual(
      expect.arrayContaining(["strata.v1.FeatureStore", "strata.v1.SegmentFetch", "grpc.health.v1.Health"]),
    );
    call.end();
    r.close();
  });

  it("exposes Prometheus metrics", async () => {
    const text = await (await fetch(`http://127.0.0.1:${h.server.metricsPort}/metrics`)).text();
    expect(text).toMatch(/strata_grpc_requests_total\{method="GetFeatures",code="OK"\} \d+/);
    expect(text).toMatch(/strata_serving_version\{table="users"\} 1/);
    expect(text).toMatch(/strata_grpc_request_duration_seconds_bucket/);
  });
});

describe("bearer token", () => {
  it("refuses calls without the token", async () => {
    const h = await startHarness({ seed: [userRow(1)], env: { STRATA_AUTH_TOKEN: "s3cret" } });
    try {
      expect((await h.client.getFeatures({ table: "users", keys: ["user:1"] })).rows[0]!.status).toBe(
        "ROW_STATUS_FOUND",
      );
      const raw = rawGetFeatures(h.address);
      const err = await raw(Buffer.from([0x0a, 5, ...Buffer.from("users"), 0x12, 1, 0x61])).catch(
        (e: ServiceError) => e,
      );
      expect((err as ServiceError).code).toBe(status.UNAUTHENTICATED);
      // A stream without it, on Strata's own transport: refused before any request is answered.
      const anonymous = createStrataClient(h.address);
      const stream = anonymous.openStream({ retries: 0 });
      await expect(stream.send({ table: "users", keys: ["user:1"] })).rejects.toMatchObject({
        code: status.UNAUTHENTICATED,
      });
      stream.close();
      anonymous.close();
    } finally {
      await h.close();
    }
  });
});

describe("STRATA_GRPC_DIRECT=0", () => {
  it("leaves GetFeatures and StreamFeatures to grpc-js, with the same answers", async () => {
    const h = await startHarness({ seed: [userRow(1), userRow(2)], env: { STRATA_GRPC_DIRECT: "0" } });
    try {
      expect(h.server.transport).toBe("grpc-js");
      const res = await h.client.getFeatures({ table: "users", keys: ["user:2", "nope"] });
      expect(res.rows.map((r) => [r.key, r.status, r.values[3]])).toEqual([
        ["user:2", "ROW_STATUS_FOUND", 3],
        ["nope", "ROW_STATUS_NOT_FOUND", undefined],
      ]);
      const stream = h.client.openStream();
      expect((await stream.send({ table: "users", keys: ["user:1"] })).rows[0]!.values[3]).toBe(1.5);
      await expect(stream.send({ table: "nope", keys: ["x"] })).rejects.toMatchObject({
        code: status.NOT_FOUND,
      });
      stream.close();
    } finally {
      await h.close();
    }
  });
});

function rawGetFeatures(address: string, method = "GetFeatures"): (bytes: Buffer) => Promise<Buffer> {
  const Client = makeGenericClientConstructor(
    {
      Call: {
        path: `/strata.v1.FeatureStore/${method}`,
        requestStream: false,
        responseStream: false,
        requestSerialize: (b: Buffer) => b,
        requestDeserialize: (b: Buffer) => b,
        responseSerialize: (b: Buffer) => b,
        responseDeserialize: (b: Buffer) => b,
      },
    },
    "FeatureStore",
  );
  const client = new Client(address, credentials.createInsecure()) as unknown as {
    Call(b: Buffer, md: Metadata, cb: (e: ServiceError | null, r: Buffer) => void): void;
  };
  return (bytes) =>
    new Promise((resolve, reject) =>
      client.Call(bytes, new Metadata(), (e, r) => (e ? reject(e) : resolve(r))),
    );
}
