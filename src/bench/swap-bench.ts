/**
 * Memory over swaps: a server follows 1,000 publishes of small deltas (each mapping one new
 * segment and releasing the version before). Old mappings go when their snapshots are collected,
 * so RSS and mapped memory should stay flat: reported as the growth over the second half of the
 * swaps (the first half warms the JIT, the allocator and the page cache).
 */
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { parseTablesConfig } from "../config/tables-config.js";
import { loadConfig } from "../config/config.js";
import { TableStore } from "../storage/table-store.js";
import { VersionWriter } from "../storage/version-writer.js";
import { StrataServer } from "../serve/strata-server.js";
import { log, round, settle, type Metric } from "./metric.js";

export async function benchSwaps(opts: { quick: boolean }): Promise<Metric[]> {
  const swaps = opts.quick ? 300 : 2000;
  const mid = swaps / 2;
  const root = mkdtempSync(join(tmpdir(), "strata-swaps-"));
  const tables = parseTablesConfig({
    tables: [{ name: "t", key: "id", features: [{ name: "v", type: "float32[64]" }] }],
  });
  const schema = tables.tables[0]!;
  const store = new TableStore(root, "t");
  const writer = new VersionWriter(store, schema);
  const row = (i: number) => ({
    key: `k${i % 5000}`,
    eventTimeMs: 1,
    values: [new Float32Array(64).fill(i)],
  });
  await writer.importRows(
    (async function* () {
      yield Array.from({ length: 50_000 }, (_, i) => row(i));
    })(),
  );
  const server = new StrataServer({
    config: loadConfig({ dataDir: root, port: 0, metricsPort: "off" }, {}),
    tables,
    backstopIntervalMs: 60_000,
  });
  await server.start();
  const served = server.tables.get("t")!;
  // Unmapping happens when a mapping's buffer is collected: collect, yield, collect.
  const sample = async (): Promise<{ rss: number; mapped: number; files: number }> => {
    await settle();
    const segments = mappedSegments(root);
    return {
      rss: process.memoryUsage().rss / 2 ** 20,
      mapped: segments.bytes / 2 ** 20,
      files: segments.files,
    };
  };
  let atMid = await sample();
  try {
    for (let s = 1; s <= swaps; s++) {
      // Compact every 50 publishes, as the ingestor would, so a version has a bounded number of deltas.
      if (s % 50 === 0) writer.compact();
      else writer.publishDelta([row(s), row(s + 1)], null, store.requireCurrentVersion());
      store.gc(3);
      await served.refresh();
      if (served.servingVersion !== store.currentVersion()) throw new Error(`swap ${s} not taken`);
      if (s === mid) atMid = await sample();
    }
    const end = await sample();
    log(
      `swaps: rss ${atMid.rss.toFixed(0)} -> ${end.rss.toFixed(0)} MiB, mapped segments ${atMid.mapped.toFixed(1)} -> ${end.mapped.toFixed(1)} MiB (${atMid.files} -> ${end.files} files)`,
    );
    return [
      {
        name: "swap_rss_growth",
        value: round(end.rss - atMid.rss, 1),
        unit: "MiB",
        target: "flat (within noise)",
        conditions: `RSS after swap ${swaps} minus after swap ${mid} (forced GC before each sample), 50k rows of float32[64], a 2-row delta per swap, compaction every 50, gc --keep 3; RSS at swap ${mid}: ${atMid.rss.toFixed(0)} MiB`,
      },
      {
        name: "swap_mapped_growth",
        value: round(end.mapped - atMid.mapped, 1),
        unit: "MiB",
        target: "flat",
        conditions: `segment files mapped in the process (/proc/self/maps) after swap ${swaps} minus after swap ${mid}: ${atMid.files} -> ${end.files} files, ${end.mapped.toFixed(1)} MiB at the end`,
      },
    ];
  } finally {
    await server.stop(100);
    rmSync(root, { recursive: true, force: true });
  }
}

/** Segment files under `root` mapped in this process, from /proc/self/maps. */
function mappedSegments(root: string): { bytes: number; files: number } {
  let bytes = 0;
  const files = new Set<string>();
  for (const line of readFileSync("/proc/self/maps", "utf8").split("\n")) {
    const path = line.slice(line.indexOf("/"));
    if (!line.includes("/") || !path.startsWith(root)) continue;
    const [start, end] = line
      .split(" ")[0]!
      .split("-")
      .map((h) => Number.parseInt(h, 16));
    bytes += end! - start!;
    files.add(path);
  }
  return { bytes, files: files.size };
}
