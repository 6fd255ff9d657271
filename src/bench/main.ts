/**
 * `npm run bench [-- --quick] [-- --only import,storage,serve,swaps,ingest]`: runs the benchmark
 * suites and writes bench/results/latest.json ({machine, metrics}) and bench/results/latest.md
 * (a table and bar charts). Figures are medians; peers are measured in the same run, so ratios
 * compare like with like on this shared, noisy machine.
 */
import { cpus, totalmem, platform, release } from "node:os";
import { mkdirSync, writeFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { execFileSync } from "node:child_process";
import { parseArgs } from "node:util";
import { benchImport, benchStorage } from "./storage-bench.js";
import { log, type Metric } from "./metric.js";
import { renderReport } from "./report.js";

const ROOT = join(dirname(fileURLToPath(import.meta.url)), "..", "..");

const SUITES: Record<string, (opts: { quick: boolean }) => Promise<Metric[]>> = {
  import: benchImport,
  storage: benchStorage,
  serve: async (opts) => (await import("./serve-bench.js")).benchServe(opts),
  swaps: async (opts) => (await import("./swap-bench.js")).benchSwaps(opts),
  ingest: async (opts) => {
    // The ingest suite reads STRATA_KAFKA_BROKERS: bring up the project's broker when it is unset.
    if (!process.env.STRATA_KAFKA_BROKERS) {
      const out = execFileSync("bash", [join(ROOT, "scripts/services.sh"), "up", "kafka"], {
        encoding: "utf8",
      });
      const brokers = /KAFKA_BROKERS=(\S+)/.exec(out)?.[1];
      if (brokers) process.env.STRATA_KAFKA_BROKERS = brokers;
    }
    return (await import("./ingest-bench.js")).benchIngest(opts);
  },
};

async function main(): Promise<void> {
  const { values: args } = parseArgs({
    options: { quick: { type: "boolean", default: false }, only: { type: "string" } },
  });
  const quick = args.quick;
  const only = args.only?.split(",") ?? Object.keys(SUITES);
  const unknown = only.filter((name) => !(name in SUITES));
  if (unknown.length > 0)
    throw new Error(`Unknown suite "${unknown.join(", ")}" (have ${Object.keys(SUITES).join(", ")})`);
  const machine = {
    cpus: cpus().length,
    cpu_model: cpus()[0]?.model ?? "unknown",
    memory_gb: Math.round(totalmem() / 2 ** 30),
    platform: `${platform()} ${release()}`,
    node: process.version,
    date: new Date().toISOString(),
    quick,
  };
  const metrics: Metric[] = [];
  const failures: string[] = [];
  for (const name of only) {
    const suite = SUITES[name]!;
    log(`suite ${name}`);
    try {
      metrics.push(...(await suite({ quick })));
    } catch (err) {
      failures.push(`${name}: ${err instanceof Error ? err.stack : String(err)}`);
      log(`suite ${name} failed: ${String(err)}`);
    }
  }
  const outDir = join(ROOT, "bench", "results");
  mkdirSync(outDir, { recursive: true });
  writeFileSync(join(outDir, "latest.json"), JSON.stringify({ machine, metrics, failures }, null, 2) + "\n");
  writeFileSync(join(outDir, "latest.md"), renderReport(machine, metrics, failures));
  for (const m of metrics) {
    log(`${m.name}: ${m.value} ${m.unit}${m.peer ? ` | ${m.peer}: ${m.peer_value} | ratio ${m.ratio}` : ""}`);
  }
  log(`wrote ${join(outDir, "latest.json")} and latest.md`);
  if (failures.length > 0) process.exitCode = 1;
}

await main();
