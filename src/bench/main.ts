/**
 * `npm run bench [-- --quick] [-- --only storage,import,serve,ingest]`: runs the benchmark suites and writes
 * bench/results/latest.json ({machine, metrics}) and bench/results/latest.md (a table and bar
 * charts). Figures are medians; peers are measured in the same run, so ratios compare like with
 * like on this shared, noisy machine.
 */
import { cpus, totalmem, platform, release } from "node:os";
import { mkdirSync, writeFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { execFileSync } from "node:child_process";
import { benchStorage } from "./storage-bench.js";
import { log, type Metric } from "./metric.js";
import { renderReport } from "./report.js";

const ROOT = join(dirname(fileURLToPath(import.meta.url)), "..", "..");

const SUITES: Record<string, (opts: { quick: boolean }) => Promise<Metric[]>> = {
  storage: benchStorage,
  import: async (opts) => (await import("./storage-bench.js")).benchImport(opts),
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
  const args = process.argv.slice(2);
  const quick = args.includes("--quick");
  const onlyAt = args.indexOf("--only");
  // "import" is part of "storage": by itself only when asked for.
  const only =
    onlyAt >= 0 ? (args[onlyAt + 1] ?? "").split(",") : Object.keys(SUITES).filter((s) => s !== "import");
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
    const suite = SUITES[name];
    if (!suite) throw new Error(`Unknown suite "${name}" (have ${Object.keys(SUITES).join(", ")})`);
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
