/**
 * The only ways Strata writes a file that must survive a crash: write to a temp name, fsync,
 * rename over the final name, fsync the directory (the rename is only durable once the directory
 * is). Published files are never written again: a mapped file that shrinks kills the process with
 * SIGBUS, which JavaScript cannot catch.
 */
import {
  closeSync,
  existsSync,
  fsyncSync,
  mkdirSync,
  openSync,
  renameSync,
  statSync,
  writeSync,
} from "node:fs";
import { randomBytes } from "node:crypto";
import { basename, dirname, join, resolve } from "node:path";

/** Temp names carry this mark so a start-up sweep can remove what a crash left. */
export const TEMP_MARK = ".tmp-";

export function tempPathFor(path: string): string {
  return join(
    dirname(path),
    `${TEMP_MARK}${basename(path)}.${process.pid}.${randomBytes(4).toString("hex")}`,
  );
}

/**
 * True for a temp file that a crash left: its writer (the pid in its name) is gone. A temp file
 * of a live process is its work in progress and stays.
 */
export function isAbandonedTemp(name: string): boolean {
  if (!name.startsWith(TEMP_MARK)) return false;
  const pid = Number(/\.(\d+)\.[0-9a-f]{8}$/.exec(name)?.[1]);
  return !(Number.isInteger(pid) && pid > 0 && processAlive(pid));
}

export function processAlive(pid: number): boolean {
  if (pid === process.pid) return true;
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === "EPERM";
  }
}

export function fsyncDir(dir: string): void {
  const fd = openSync(dir, "r");
  try {
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
}

export function writeFileDurably(path: string, data: string | Uint8Array): void {
  const tmp = tempPathFor(path);
  const fd = openSync(tmp, "wx", 0o644);
  try {
    const bytes = typeof data === "string" ? Buffer.from(data, "utf8") : data;
    let at = 0;
    while (at < bytes.length) at += writeSync(fd, bytes, at, bytes.length - at, at);
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
  renameSync(tmp, path);
  fsyncDir(dirname(path));
}

/**
 * `mkdir -p`. Node's own recursive mkdir loops for ever where a filesystem answers ENOENT for a
 * directory whose parent exists (procfs, sysfs: `strata backup t /proc/x` spun at 100% CPU): this
 * creates each missing component in turn and throws the first error it meets.
 */
export function makeDirs(path: string): void {
  const missing: string[] = [];
  for (let dir = resolve(path); !existsSync(dir); dir = dirname(dir)) {
    missing.push(dir);
    if (dirname(dir) === dir) break;
  }
  for (const dir of missing.reverse()) {
    try {
      mkdirSync(dir);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== "EEXIST") throw err; // made meanwhile: fine
    }
  }
  if (!statSync(path).isDirectory()) mkdirSync(path); // throws EEXIST naming the file in the way
}
