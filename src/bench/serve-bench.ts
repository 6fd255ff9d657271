/**
 * Serving figures: rows/s and p50/p99 latency per 100-key batch over bidi streams (1 and 4) and
 * unary calls, against (a) a real Redis read with ioredis MGET of the same rows at the same
 * concurrency and (b) a pre-encoded grpc-js server (the transport ceiling), all in one run; and the
 * server's CPU µs per batch. Also against (c) the same pre-encoded server on Strata's own transport
 * (decision 32), which grpc-js's is heavier than: what the read path alone costs. Servers run in
 * their own processes; client and servers share the machine.
 */
import { spawn, execFileSync, type ChildProcess } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { createServer } from "node:net";
import { credentials, makeGenericClientConstructor, Metadata, type Client } from "@grpc/grpc-js";
import { Redis } from "ioredis";
import { parseTablesConfig } from "../config/tables-config.js";
import { TableStore } from "../storage/table-store.js";
import { VersionWriter } from "../storage/version-writer.js";
import { MappedSegmentCache } from "../storage/mapped-segment.js";
import { openSnapshot } from "../storage/version-snapshot.js";
import { log, median, percentile, round, shuffle, type Metric } from "./metric.js";
import { RAW_METHODS } from "./raw-methods.js";

const HERE = dirname(fileURLToPath(import.meta.url));
const ROOT = resolve(HERE, "..", "..");
export const BATCH = 100;
const CONCURRENCY = 32; // requests in flight, in every mode
const FLOATS = 64;

interface Run {
  rowsPerSec: number;
  p50Ms: number;
  p99Ms: number;
  /** Batches answered, warm-up included: what the server's CPU time over a run paid for. */
  answered: number;
  latencies: number[];
}

/** Runs pooled: rows/s the median of the runs', latency percentiles over every batch. */
function pooled(runs: Run[]): Run {
  const latencies = runs.flatMap((r) => r.latencies);
  return {
    rowsPerSec: median(runs.map((r) => r.rowsPerSec)),
    p50Ms: median(latencies),
    p99Ms: percentile(latencies, 99),
    answered: runs.reduce((n, r) => n + r.answered, 0),
    latencies,
  };
}

export async function benchServe(opts: { quick: boolean }): Promise<Metric[]> {
  const n = opts.quick ? 100_000 : 1_000_000;
  // Strata, the ceilings and Redis take turns, so that a noisy minute on this shared machine hits
  // all (one 8 s pair once gave 0.56 M against 0.94 M rows/s while pairs around it gave 1.8 against 3).
  const rounds = opts.quick ? 1 : 4;
  const roundSeconds = opts.quick ? 3 : 2;
  const dir = mkdtempSync(join(tmpdir(), "strata-serve-bench-"));
  const children: ChildProcess[] = [];
  let redis: Redis | null = null;
  try {
    log(`serve: ${n} rows of ${FLOATS} float32`);
    const store = await writeServeTable(dir, n);
    const batches = keyBatches(n);
    const strata = await startStrata(ROOT, dir, children);
    const strataPort = strata.port;
    const requests = batches.map((k, i) => encodeRequest("emb", k, i + 1));

    // The ceiling: the same response size, pre-encoded.
    const sample = await unaryCall(`127.0.0.1:${strataPort}`, requests[0]!);
    writeFileSync(join(dir, "response.bin"), sample);
    const ceilingPort = await freePort();
    const ceiling = spawnReady(
      "node",
      [join(HERE, "ceiling-server.js"), String(ceilingPort), join(dir, "response.bin")],
      "ready",
    );
    children.push(ceiling.child);
    await ceiling.ready;
    // The same over a transport like Strata's own (decision 32): what the read path costs.
    const directPort = await freePort();
    const directCeiling = spawnReady(
      "node",
      [join(HERE, "ceiling-server.js"), String(directPort), join(dir, "response.bin"), "direct"],
      "ready",
    );
    children.push(directCeiling.child);
    await directCeiling.ready;

    const metrics: Metric[] = [];
    const modes: Array<{ name: string; streams: number }> = [
      { name: "bidi_1_stream", streams: 1 },
      { name: "bidi_4_streams", streams: 4 },
      { name: "unary", streams: 0 },
    ];
    // Redis with the same rows (the packed row bytes), read with MGET.
    const redisUrl = startRedis();
    redis = new Redis(redisUrl, { lazyConnect: false });
    const snap = openSnapshot(store, new MappedSegmentCache(), 1, { verify: false });
    for (let i = 0; i < n; i += 5000) {
      const pipe = redis.pipeline();
      for (let j = i; j < Math.min(n, i + 5000); j++) {
        const loc = snap.locate(`user:${j}`);
        pipe.set(
          `user:${j}`,
          Buffer.from(loc.segment!.bytes.subarray(loc.valueOffset, loc.valueOffset + loc.valueLength)),
        );
      }
      await pipe.exec();
    }
    // Redis runs a round beside each of Strata's, like the ceilings: one run of its own, minutes
    // away from Strata's, made the ratio to it move with the machine's hour (1.7x to 2.8x).
    const mget = (k: string[]): Promise<unknown> => redis!.mgetBuffer(...k);

    // STRATA_BENCH_SERVE_MODES=bidi_1_stream,unary runs a subset (for profiling).
    const wanted = process.env.STRATA_BENCH_SERVE_MODES?.split(",");
    for (const mode of modes.filter((m) => !wanted || wanted.includes(m.name))) {
      const strataRuns: Run[] = [];
      const ceilingRuns: Run[] = [];
      const directRuns: Run[] = [];
      const redisRuns: Run[] = [];
      let strataCpu = 0;
      let ceilingCpu = 0;
      for (let r = 0; r < rounds; r++) {
        const strataCpu0 = cpuMs(strata.child.pid!);
        strataRuns.push(await runGrpc(`127.0.0.1:${strataPort}`, mode.streams, roundSeconds, requests));
        strataCpu += cpuMs(strata.child.pid!) - strataCpu0;
        const ceilingCpu0 = cpuMs(ceiling.child.pid!);
        ceilingRuns.push(await runGrpc(`127.0.0.1:${ceilingPort}`, mode.streams, roundSeconds, requests));
        ceilingCpu += cpuMs(ceiling.child.pid!) - ceilingCpu0;
        directRuns.push(await runGrpc(`127.0.0.1:${directPort}`, mode.streams, roundSeconds, requests));
        redisRuns.push(await measure(roundSeconds, CONCURRENCY, batches, mget));
      }
      const s = pooled(strataRuns);
      const c = pooled(ceilingRuns);
      const ratios = strataRuns.map((run, r) => run.rowsPerSec / ceilingRuns[r]!.rowsPerSec);
      const d = pooled(directRuns);
      const directRatios = strataRuns.map((run, r) => run.rowsPerSec / directRuns[r]!.rowsPerSec);
      const redisRun = pooled(redisRuns);
      const redisRatios = strataRuns.map((run, r) => run.rowsPerSec / redisRuns[r]!.rowsPerSec);
      log(
        `${mode.name}: strata ${Math.round(s.rowsPerSec)} rows/s (p50 ${round(s.p50Ms, 2)}, p99 ${round(s.p99Ms, 2)} ms), ` +
          `ceiling ${Math.round(c.rowsPerSec)} rows/s (p50 ${round(c.p50Ms, 2)}, p99 ${round(c.p99Ms, 2)} ms); ` +
          `ratio per round ${ratios.map((x) => round(x, 2)).join(", ")}; ` +
          `direct ceiling ${Math.round(d.rowsPerSec)} rows/s, ratio per round ${directRatios.map((x) => round(x, 2)).join(", ")}; ` +
          `redis mget ${Math.round(redisRun.rowsPerSec)} rows/s, ratio per round ${redisRatios.map((x) => round(x, 2)).join(", ")}`,
      );
      const conditions = `${BATCH}-key batches of ${FLOATS} float32 from ${n} rows, random keys, ${CONCURRENCY} requests in flight${mode.streams ? ` over ${mode.streams} stream(s)` : ""}, ${rounds} alternating rounds of ${roundSeconds} s each (medians; the ratio is the median of the rounds' ratios: ${ratios.map((x) => round(x, 2)).join(", ")}), client and server on one 2-core machine`;
      metrics.push(
        {
          name: `serve_${mode.name}_rows_per_sec`,
          value: Math.round(s.rowsPerSec),
          unit: "rows/s",
          peer: "pre-encoded grpc-js server (ceiling)",
          peer_value: Math.round(c.rowsPerSec),
          ratio: round(median(ratios)),
          target: mode.streams === 1 ? ">= 1.2 M rows/s; >= 75% of ceiling" : ">= 75% of ceiling",
          conditions,
        },
        {
          name: `serve_${mode.name}_vs_direct_ceiling`,
          value: Math.round(s.rowsPerSec),
          unit: "rows/s",
          peer: "pre-encoded server on Strata's own transport (direct HTTP/2, decision 32)",
          peer_value: Math.round(d.rowsPerSec),
          ratio: round(median(directRatios)),
          conditions: `${conditions}; its ratio per round: ${directRatios.map((x) => round(x, 2)).join(", ")}`,
        },
        {
          name: `serve_${mode.name}_vs_redis`,
          value: Math.round(s.rowsPerSec),
          unit: "rows/s",
          peer: "Redis 7 via ioredis MGET",
          peer_value: Math.round(redisRun.rowsPerSec),
          ratio: round(median(redisRatios)),
          target: ">= 2x ioredis",
          conditions: `${conditions}; Redis ran a round (${CONCURRENCY} MGETs in flight on one connection) beside each of Strata's, its ratio per round: ${redisRatios.map((x) => round(x, 2)).join(", ")}`,
        },
        {
          name: `serve_${mode.name}_p50`,
          value: round(s.p50Ms, 3),
          unit: "ms/batch",
          peer: "Redis MGET",
          peer_value: round(redisRun.p50Ms, 3),
          conditions,
        },
        {
          name: `serve_${mode.name}_p99`,
          value: round(s.p99Ms, 3),
          unit: "ms/batch",
          peer: "Redis MGET",
          peer_value: round(redisRun.p99Ms, 3),
          conditions,
        },
        {
          name: `serve_${mode.name}_server_cpu_per_batch`,
          value: round((strataCpu * 1000) / s.answered, 1),
          unit: "µs/batch",
          peer: "pre-encoded grpc-js server (ceiling)",
          peer_value: round((ceilingCpu * 1000) / c.answered, 1),
          conditions: `server process user+system CPU / batches answered, both over the whole runs (warm-ups included); ${conditions}`,
        },
      );
    }
    metrics.push(...(await benchScan(`127.0.0.1:${strataPort}`, strata.child.pid!, redis, n, rounds)));
    return metrics;
  } finally {
    await redis?.quit().catch(() => {});
    await Promise.all(
      children.map(
        (c) =>
          new Promise((res) => (c.exitCode !== null ? res(null) : (c.once("exit", res), c.kill("SIGTERM")))),
      ),
    );
    rmSync(dir, { recursive: true, force: true });
  }
}

/** The suite's table in `dir` (tables.json and data/): `n` rows of FLOATS float32, keys user:0 on. */
export async function writeServeTable(dir: string, n: number): Promise<TableStore> {
  const tables = {
    tables: [{ name: "emb", key: "id", features: [{ name: "v", type: `float32[${FLOATS}]` }] }],
  };
  writeFileSync(join(dir, "tables.json"), JSON.stringify(tables));
  const store = new TableStore(join(dir, "data"), "emb");
  await new VersionWriter(store, parseTablesConfig(tables).tables[0]!).importRows(
    (async function* () {
      for (let i = 0; i < n; i += 10_000) {
        yield Array.from({ length: Math.min(10_000, n - i) }, (_, j) => ({
          key: `user:${i + j}`,
          eventTimeMs: 1_700_000_000_000,
          values: [new Float32Array(FLOATS).fill(i + j)],
        }));
      }
    })(),
  );
  return store;
}

/** 2000 batches of BATCH random keys of that table. */
export function keyBatches(n: number): string[][] {
  const keys = shuffle(Array.from({ length: n }, (_, i) => `user:${i}`));
  return Array.from({ length: 2000 }, (_, b) =>
    keys.slice((b * BATCH) % (n - BATCH), ((b * BATCH) % (n - BATCH)) + BATCH),
  );
}

/**
 * The server of the built checkout at `root` on the table in `dir`, in a process of its own (added
 * to `children`), with the Node flags in STRATA_BENCH_SERVER_NODE_ARGS: say
 * `--cpu-prof --cpu-prof-dir=/tmp/prof`, or `--perf-basic-prof` for `perf record -p`.
 */
export async function startStrata(
  root: string,
  dir: string,
  children: ChildProcess[],
): Promise<{ child: ChildProcess; port: number }> {
  const nodeArgs = (process.env.STRATA_BENCH_SERVER_NODE_ARGS ?? "").split(" ").filter(Boolean);
  const port = await freePort();
  const data = ["--data-dir", join(dir, "data"), "--config", join(dir, "tables.json")];
  const args = [...nodeArgs, join(root, "dist/cli/main.js"), ...data, "serve", "--port", String(port)];
  const strata = spawnReady("node", [...args, "--metrics-port", "off"], "serving");
  children.push(strata.child);
  await strata.ready;
  return { child: strata.child, port };
}

/**
 * Whole-table reads: ScanTable of every row (chunks as the server sizes them, bytes received
 * undecoded, as the ceiling's are) against Redis SCAN with COUNT 1000 and an MGET of each batch,
 * taking turns.
 */
async function benchScan(
  address: string,
  serverPid: number,
  redis: Redis,
  n: number,
  rounds: number,
): Promise<Metric[]> {
  const redisCount = 1000;
  const request = Buffer.from([0x0a, 3, ...Buffer.from("emb")]); // chunk_rows 0: the server sizes chunks
  const client = newClient(address);
  const scanOnce = async (): Promise<number> => {
    const t0 = performance.now();
    await new Promise<void>((resolve, reject) => {
      const call = client.ScanTable(request, new Metadata());
      call.on("data", () => {});
      call.on("end", resolve);
      call.on("error", reject);
    });
    return n / ((performance.now() - t0) / 1000);
  };
  const redisOnce = async (): Promise<number> => {
    const t0 = performance.now();
    let cursor = "0";
    let rows = 0;
    do {
      const [next, keys] = await redis.scan(cursor, "COUNT", redisCount);
      if (keys.length > 0) rows += (await redis.mgetBuffer(...keys)).length;
      cursor = next;
    } while (cursor !== "0");
    return rows / ((performance.now() - t0) / 1000);
  };
  try {
    await scanOnce(); // warm-up: the mapping's pages and the server's code
    const strata: number[] = [];
    const peer: number[] = [];
    let cpu = 0;
    for (let r = 0; r < rounds; r++) {
      const cpu0 = cpuMs(serverPid);
      strata.push(await scanOnce());
      cpu += cpuMs(serverPid) - cpu0;
      peer.push(await redisOnce());
    }
    const cpuUsPerRow = (cpu * 1000) / (rounds * n);
    const s = median(strata);
    const p = median(peer);
    const each = (rates: number[]): string => rates.map((x) => `${round(x / 1e6, 2)} M`).join(", ");
    log(
      `scan: strata ${Math.round(s)} rows/s (scans ${each(strata)}), redis scan+mget ${Math.round(p)} rows/s (${each(peer)})`,
    );
    return [
      {
        name: "serve_scan_rows_per_sec",
        value: Math.round(s),
        unit: "rows/s",
        peer: "Redis 7 SCAN COUNT 1000 + MGET via ioredis",
        peer_value: Math.round(p),
        ratio: round(s / p),
        conditions: `ScanTable of all ${n} rows of ${FLOATS} float32, chunks sized by the server (about 96 KiB), one stream, responses received undecoded; median of ${rounds} alternating whole scans; server CPU ${round(cpuUsPerRow, 2)} µs a row`,
      },
    ];
  } finally {
    client.close();
  }
}

/** Redis from scripts/services.sh (a real server, started if needed). */
function startRedis(): string {
  const out = execFileSync("bash", [join(ROOT, "scripts/services.sh"), "up", "redis"], { encoding: "utf8" });
  const url = /REDIS_URL=(\S+)/.exec(out)?.[1];
  if (!url) throw new Error(`services.sh up redis printed no REDIS_URL:\n${out}`);
  return url;
}

const RawClient = makeGenericClientConstructor(RAW_METHODS, "FeatureStore");
type Raw = Client & {
  GetFeatures(req: Buffer, md: Metadata, cb: (err: Error | null, res: Buffer) => void): void;
  StreamFeatures(md: Metadata): NodeJS.ReadWriteStream & { write(b: Buffer): boolean; end(): void };
  ScanTable(req: Buffer, md: Metadata): NodeJS.ReadableStream;
};
const newClient = (address: string): Raw =>
  new RawClient(address, credentials.createInsecure(), {
    "grpc-node.flow_control_window": 1 << 20,
  }) as unknown as Raw;

function unaryCall(address: string, req: Buffer): Promise<Buffer> {
  const c = newClient(address);
  return new Promise((res, rej) =>
    c.GetFeatures(req, new Metadata(), (e, r) => (c.close(), e ? rej(e) : res(r))),
  );
}

export async function runGrpc(
  address: string,
  streams: number,
  seconds: number,
  requests: Buffer[],
): Promise<Run> {
  const client = newClient(address);
  try {
    if (streams === 0) {
      return await measure(
        seconds,
        CONCURRENCY,
        requests,
        (req) =>
          new Promise((res, rej) => client.GetFeatures(req, new Metadata(), (e, r) => (e ? rej(e) : res(r)))),
      );
    }
    // Each stream keeps CONCURRENCY / streams requests in flight; responses come back in order.
    const calls = Array.from({ length: streams }, () => {
      const call = client.StreamFeatures(new Metadata());
      const waiting: Array<{ res: (b: Buffer) => void; rej: (e: Error) => void }> = [];
      call.on("data", (b: Buffer) => waiting.shift()?.res(b));
      // A stream error fails the requests it owes; one after the run (server gone) is harmless.
      call.on("error", (e: Error) => waiting.splice(0).forEach((w) => w.rej(e)));
      return { call, waiting };
    });
    let next = 0;
    return await measure(seconds, CONCURRENCY, requests, (req) => {
      const s = calls[next++ % streams]!;
      return new Promise<Buffer>((res, rej) => {
        s.waiting.push({ res, rej });
        s.call.write(req);
      });
    }).finally(() => calls.forEach((s) => s.call.end()));
  } finally {
    client.close();
  }
}

/** Keeps `inFlight` operations going for `seconds` (after a 1 s warm-up); latency per operation. */
async function measure<T>(
  seconds: number,
  inFlight: number,
  inputs: T[],
  op: (input: T) => Promise<unknown>,
): Promise<Run> {
  const latencies: number[] = [];
  let done = 0;
  let answered = 0;
  let i = 0;
  const warmUntil = performance.now() + 1000;
  const endAt = warmUntil + seconds * 1000;
  let measuredStart = 0;
  const worker = async (): Promise<void> => {
    while (performance.now() < endAt) {
      const t0 = performance.now();
      await op(inputs[i++ % inputs.length]!);
      const t1 = performance.now();
      answered++;
      if (t0 >= warmUntil) {
        if (measuredStart === 0) measuredStart = t0;
        latencies.push(t1 - t0);
        done++;
      }
    }
  };
  await Promise.all(Array.from({ length: inFlight }, worker));
  const elapsed = (performance.now() - Math.max(measuredStart, warmUntil)) / 1000;
  return {
    rowsPerSec: (done * BATCH) / elapsed,
    p50Ms: median(latencies),
    p99Ms: percentile(latencies, 99),
    answered,
    latencies,
  };
}

/** A GetFeaturesRequest: 1 table, 2 keys*, 4 request_id. */
export function encodeRequest(table: string, keys: string[], id: number): Buffer {
  const parts: Buffer[] = [field(1, Buffer.from(table))];
  for (const k of keys) parts.push(field(2, Buffer.from(k)));
  parts.push(Buffer.from([0x20, ...varint(id)]));
  return Buffer.concat(parts);
}
const field = (n: number, b: Buffer): Buffer =>
  Buffer.concat([Buffer.from([(n << 3) | 2, ...varint(b.length)]), b]);
function varint(v: number): number[] {
  const out: number[] = [];
  while (v >= 0x80) {
    out.push((v & 0x7f) | 0x80);
    v = Math.floor(v / 128);
  }
  out.push(v);
  return out;
}

function spawnReady(
  cmd: string,
  args: string[],
  readyText: string,
): { child: ChildProcess; ready: Promise<void> } {
  // One host: the servers join no fleet and run no ingest, whatever the shell exports.
  const env = { ...process.env, STRATA_REDIS_URL: "", STRATA_KAFKA_BROKERS: "" };
  const child = spawn(cmd, args, { stdio: ["ignore", "pipe", "pipe"], env });
  const ready = new Promise<void>((res, rej) => {
    let out = "";
    const onData = (d: Buffer): void => {
      out += d;
      if (out.includes(readyText)) res();
    };
    child.stdout!.on("data", onData);
    child.stderr!.on("data", (d: Buffer) => (out += d));
    child.on("exit", (code) => rej(new Error(`${args[0]} exited with ${code}: ${out}`)));
  });
  return { child, ready };
}

export function cpuMs(pid: number): number {
  const fields = readFileSync(`/proc/${pid}/stat`, "utf8").split(") ")[1]!.split(" ");
  return ((Number(fields[11]) + Number(fields[12])) * 1000) / 100; // utime + stime, in 10 ms ticks
}

function freePort(): Promise<number> {
  return new Promise((res) => {
    const s = createServer();
    s.listen(0, "127.0.0.1", () => {
      const port = (s.address() as { port: number }).port;
      s.close(() => res(port));
    });
  });
}
