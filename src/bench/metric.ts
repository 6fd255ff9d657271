import { readFileSync } from "node:fs";
import { setFlagsFromString } from "node:v8";
import { runInNewContext } from "node:vm";

setFlagsFromString("--expose-gc");
const gc = runInNewContext("gc") as () => void;

/**
 * Collects garbage and lets the finalizers run (a mapping is unmapped when its buffer is collected), so an unmap of
 * an earlier iteration's mapping does not land in the next one's timing.
 */
export async function settle(): Promise<void> {
  gc();
  await new Promise((r) => setTimeout(r, 20));
  gc();
}

/** One measured figure of `npm run bench` (DESIGN §9). */
export interface Metric {
  name: string;
  value: number;
  unit: string;
  /** What the same run measured for comparison, if anything. */
  peer?: string;
  peer_value?: number;
  /** value / peer_value (or the inverse for "lower is better" metrics, said in conditions). */
  ratio?: number;
  /** The target from the issue, when there is one. */
  target?: string;
  conditions: string;
}

export function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
}

export function percentile(xs: number[], p: number): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.floor((p / 100) * s.length))]!;
}

export function shuffle<T>(xs: T[], seed = 42): T[] {
  let s = seed;
  for (let i = xs.length - 1; i > 0; i--) {
    s = (Math.imul(s, 1103515245) + 12345) >>> 0;
    const j = s % (i + 1);
    [xs[i], xs[j]] = [xs[j]!, xs[i]!];
  }
  return xs;
}

export const round = (x: number, digits = 2): number => Number(x.toFixed(digits));

export function log(msg: string): void {
  process.stderr.write(`[bench] ${msg}\n`);
}

/**
 * The share of this process's resident pages of files under `root` that are mapped with 2 MiB
 * pages (FilePmdMapped over Rss in /proc/self/smaps), or null where smaps is not there.
 */
export function hugePageShare(root: string): number | null {
  let smaps: string;
  try {
    smaps = readFileSync("/proc/self/smaps", "utf8");
  } catch {
    return null;
  }
  let rss = 0;
  let pmd = 0;
  for (const block of smaps.split(/\n(?=[0-9a-f]+-[0-9a-f]+ )/)) {
    const head = block.slice(0, block.indexOf("\n"));
    const slash = head.indexOf("/");
    if (slash < 0 || !head.slice(slash).startsWith(root)) continue;
    rss += Number(/\nRss:\s+(\d+)/.exec(block)?.[1] ?? 0);
    pmd += Number(/\nFilePmdMapped:\s+(\d+)/.exec(block)?.[1] ?? 0);
  }
  return rss > 0 ? pmd / rss : null;
}
