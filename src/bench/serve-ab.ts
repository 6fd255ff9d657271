/**
 * Two builds' servers, each on the same rows as its own build writes them, driven in turn by one
 * client: for a change too small for the serve suite to show on a noisy machine, whose ratio to
 * the ceiling moves by more than 5% from run to run (docs/benchmarks.md, session 12). Each round
 * runs this build's server and then the other's for the same time; a round's pair saw the same
 * minute of the machine.
 *
 *   node dist/bench/serve-ab.js OTHER_CHECKOUT [ROUNDS=8] [STREAMS=1] [SECONDS=6] [ROWS=1000000]
 *
 * OTHER_CHECKOUT is a built checkout, say `git worktree add /tmp/base HEAD~1` with node_modules
 * linked, `native/build` copied and `npx tsc -p tsconfig.build.json` run. STREAMS 0 is unary.
 * Prints each round's rows/s and server CPU a batch for both, then their medians and how many
 * rounds each side used less CPU in. STRATA_BENCH_SERVER_NODE_ARGS (say `--perf-basic-prof`, for
 * `perf record -p`) goes to both servers, as in the serve suite.
 */
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import type { ChildProcess } from "node:child_process";
import { median, round } from "./metric.js";
import {
  BATCH,
  cpuMs,
  encodeRequest,
  keyBatches,
  runGrpc,
  startStrata,
  writeServeTable,
} from "./serve-bench.js";

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), "..", "..");
const [other, rounds = "8", streams = "1", seconds = "6", rows = "1000000"] = process.argv.slice(2);
if (other === undefined) {
  process.stderr.write("usage: serve-ab.js OTHER_CHECKOUT [ROUNDS] [STREAMS] [SECONDS] [ROWS]\n");
  process.exit(2);
}

interface Side {
  name: string;
  child: ChildProcess;
  port: number;
  cpuPerBatch: number[];
  rowsPerSec: number[];
}
const describe = (s: Side, r?: number): string => {
  const [rate, cpu] =
    r === undefined ? [median(s.rowsPerSec), median(s.cpuPerBatch)] : [s.rowsPerSec[r]!, s.cpuPerBatch[r]!];
  return `${s.name} ${Math.round(rate / 1000)} k rows/s, ${round(cpu, 1)} µs a batch`;
};

const dirs: string[] = [];
const children: ChildProcess[] = [];
try {
  const requests = keyBatches(Number(rows)).map((k, i) => encodeRequest("emb", k, i + 1));
  // Each side serves the same rows as its own build writes them, so that a change of the
  // segment writer (say, where records are placed) is measured too.
  const start = async (name: string, root: string): Promise<Side> => {
    const dir = mkdtempSync(join(tmpdir(), "strata-serve-ab-"));
    dirs.push(dir);
    const build = (await import(join(root, "dist/bench/serve-bench.js"))) as {
      writeServeTable: typeof writeServeTable;
    };
    await build.writeServeTable(dir, Number(rows));
    return {
      name,
      ...(await startStrata(root, dir, children)),
      cpuPerBatch: [],
      rowsPerSec: [],
    };
  };
  const mine = await start("this", ROOT);
  const theirs = await start("other", resolve(other));
  for (let r = 0; r < Number(rounds); r++) {
    for (const side of [mine, theirs]) {
      const cpu0 = cpuMs(side.child.pid!);
      const run = await runGrpc(`127.0.0.1:${side.port}`, Number(streams), Number(seconds), requests);
      side.cpuPerBatch.push(((cpuMs(side.child.pid!) - cpu0) * 1000) / run.answered);
      side.rowsPerSec.push(run.rowsPerSec);
    }
    console.log(`round ${r + 1}: ${describe(mine, r)}; ${describe(theirs, r)}`);
  }
  const fewer = mine.cpuPerBatch.filter((c, r) => c < theirs.cpuPerBatch[r]!).length;
  const mode = streams === "0" ? "unary" : `${streams} stream(s)`;
  console.log(
    `medians (${BATCH}-key batches, ${mode}): ${describe(mine)}; ${describe(theirs)}; ` +
      `this build used less CPU a batch in ${fewer} of ${rounds} rounds`,
  );
} finally {
  for (const c of children) c.kill("SIGTERM");
  for (const dir of dirs) rmSync(dir, { recursive: true, force: true });
}
