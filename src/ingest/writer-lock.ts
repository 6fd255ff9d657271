/**
 * One ingest writer per table on a data dir: `<table>/writer.lock`, held for as long as an
 * ingestor runs (the publish lock of TableStore is held only for the instant of a publish).
 *
 * The lock file is made complete under a temp name and then link(2)ed into place, so it never
 * exists without its holder: {"pid":…,"start":…,"host":…,"acquired_at_ms":…}. It is stale when
 * that process is gone, or when the pid now names another process (Linux: its start time in
 * /proc/<pid>/stat differs), which matters in containers, where a restarted process often gets
 * the same small pid. A lock held by this very process is never stale: the second ingestor of a
 * process is refused like any other.
 */
import { linkSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { hostname } from "node:os";
import { join } from "node:path";
import { processAlive, tempPathFor } from "../storage/durable-fs.js";
import { TableLockedError } from "../storage/errors.js";

export const WRITER_LOCK_NAME = "writer.lock";

interface LockContent {
  pid: number;
  /** The holder's start time in clock ticks since boot (Linux), or null where unknown. */
  start: string | null;
  host: string;
  acquired_at_ms: number;
}

/** Locks held by this process, by path. */
const heldHere = new Set<string>();

export class WriterLock {
  private released = false;

  private constructor(
    readonly path: string,
    private readonly content: string,
  ) {}

  /**
   * Takes the writer lock of the table in `tableDir`, replacing a stale one. Throws
   * TableLockedError (retriable) when a live process holds it.
   */
  static acquire(tableDir: string, table: string): WriterLock {
    const path = join(tableDir, WRITER_LOCK_NAME);
    const content = JSON.stringify({
      pid: process.pid,
      start: processStartTime(process.pid),
      host: hostname(),
      acquired_at_ms: Date.now(),
    } satisfies LockContent);
    for (let attempt = 0; attempt < 5; attempt++) {
      const tmp = tempPathFor(path);
      writeFileSync(tmp, content);
      try {
        linkSync(tmp, path);
        heldHere.add(path);
        return new WriterLock(path, content);
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code !== "EEXIST") throw err;
      } finally {
        rmSync(tmp, { force: true });
      }
      const holder = readHolder(path);
      if (holder && (heldHere.has(path) || holderAlive(holder))) {
        throw new TableLockedError(
          `Cannot ingest into table "${table}": another ingestor (pid ${holder.pid} on ${holder.host}) holds "${path}"`,
          path,
        );
      }
      // Stale (or unreadable: a lock is complete when linked, so that is garbage too).
      rmSync(path, { force: true });
    }
    throw new TableLockedError(`Cannot ingest into table "${table}": "${path}" keeps being taken`, path);
  }

  /** Gives the lock up, if it is still ours. */
  release(): void {
    if (this.released) return;
    this.released = true;
    heldHere.delete(this.path);
    try {
      if (readFileSync(this.path, "utf8") === this.content) rmSync(this.path, { force: true });
    } catch {
      // already gone
    }
  }
}

function readHolder(path: string): LockContent | null {
  try {
    const c = JSON.parse(readFileSync(path, "utf8")) as Partial<LockContent>;
    if (typeof c.pid !== "number" || !Number.isInteger(c.pid) || c.pid <= 0) return null;
    return {
      pid: c.pid,
      start: typeof c.start === "string" ? c.start : null,
      host: String(c.host ?? "?"),
      acquired_at_ms: Number(c.acquired_at_ms ?? 0),
    };
  } catch {
    return null;
  }
}

function holderAlive(holder: LockContent): boolean {
  // Our pid, but not a lock this process took (checked before): a previous process that had the
  // same pid, as in a restarted container.
  if (holder.pid === process.pid) return false;
  if (!processAlive(holder.pid)) return false;
  const start = processStartTime(holder.pid);
  return holder.start === null || start === null || start === holder.start;
}

/** Field 22 of /proc/<pid>/stat (start time in clock ticks since boot), or null off Linux. */
export function processStartTime(pid: number): string | null {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
    // The command name (field 2) may hold spaces and parentheses: count fields after the last ")".
    const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
    return fields[19] ?? null;
  } catch {
    return null;
  }
}
