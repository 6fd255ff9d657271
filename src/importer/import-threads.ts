/**
 * What the two-thread imports (parallel-import.ts for CSV, parquet-parts.ts for Parquet) share:
 * running one half in a worker with its progress, carrying its errors across (a bad row keeps
 * its place, a bad file and a failed system call their kind, so that the CLI reports them with
 * the same exit codes as in one thread), and removing the parts of a half that is dropped.
 */
import { unlinkSync } from "node:fs";
import { Worker, parentPort } from "node:worker_threads";
import type { WrittenSegment } from "../storage/segment-file-writer.js";
import { isErrnoError } from "../shared/errors.js";
import { ImportFileError, ImportRowError } from "./errors.js";

/** How many threads an import may use (`STRATA_IMPORT_THREADS`, default 2). */
export function importThreads(): number {
  const env = process.env.STRATA_IMPORT_THREADS;
  return env === undefined ? 2 : Number(env);
}

/** What each half of an import wrote: the parts to publish, or to remove when the import fails. */
interface Half {
  parts: WrittenSegment[];
}

/**
 * Runs an import's two halves at once: the second in the worker module `worker` (on
 * `workerData`), the first here; `onProgress` gets the rows of both. The first half's error comes
 * first in the file, so it wins and the second half's parts are removed; so are they when
 * `keepSecond(first)` says no (`second` is then null). When the second half fails, the first
 * half's parts are removed and `secondError` says what to throw (default: its error).
 */
export async function inTwoThreads<R extends Half>(o: {
  worker: URL;
  workerData: unknown;
  first: (onProgress: (rows: number) => void) => R | Promise<R>;
  onProgress: ((rows: number) => void) | undefined;
  keepSecond?: (first: R) => boolean;
  secondError?: (err: unknown, first: R) => unknown;
}): Promise<{ first: R; second: R | null }> {
  const rows = [0, 0];
  const progress = (i: number) => (n: number) => {
    rows[i] = n;
    o.onProgress?.(rows[0]! + rows[1]!);
  };
  const second = runInWorker<R>(o.worker, o.workerData, progress(1));
  const dropSecond = () =>
    second.then(
      (r) => removeParts(r.parts),
      () => {},
    );
  let first: R;
  try {
    first = await o.first(progress(0));
  } catch (err) {
    await dropSecond();
    throw err;
  }
  if (o.keepSecond && !o.keepSecond(first)) {
    await dropSecond();
    return { first, second: null };
  }
  try {
    return { first, second: await second };
  } catch (err) {
    removeParts(first.parts);
    throw o.secondError ? o.secondError(err, first) : err;
  }
}

/**
 * Runs the worker module at `url` on `workerData` and resolves with what it hands back
 * ({@link workerMain}); its progress goes to `onProgress` on the way. The promise is already
 * guarded against being unhandled: await it when its turn comes.
 */
function runInWorker<T>(url: URL, workerData: unknown, onProgress: (rows: number) => void): Promise<T> {
  const worker = new Worker(url, { workerData });
  const done = new Promise<T>((resolve, reject) => {
    worker.on("message", (m: { progress?: number; done?: T; error?: SerializedError }) => {
      if (m.progress !== undefined) onProgress(m.progress);
      else if (m.done !== undefined) resolve(m.done);
      else if (m.error !== undefined) reject(deserializeError(m.error));
    });
    worker.on("error", reject);
    worker.on("exit", (code) => reject(new Error(`import worker exited with code ${code}`)));
  });
  done.catch(() => {});
  return done;
}

/** The body of a worker module: runs `work` and hands its result (or error) to runInWorker. */
export async function workerMain<T>(
  work: (onProgress: (rows: number) => void) => T | Promise<T>,
): Promise<void> {
  let lastPost = 0;
  try {
    const done = await work((rows) => {
      const now = Date.now();
      if (now - lastPost < 100) return;
      lastPost = now;
      parentPort!.postMessage({ progress: rows });
    });
    parentPort!.postMessage({ done });
  } catch (err) {
    parentPort!.postMessage({ error: serializeError(err) });
  }
}

/** Removes the files of parts that will not be published. */
export function removeParts(parts: readonly WrittenSegment[]): void {
  for (const p of parts) {
    try {
      unlinkSync(p.path);
    } catch {
      // already gone
    }
  }
}

interface SerializedError {
  importRow: {
    reason: string;
    line: number;
    column: number | null;
    field: string | null;
    unit: "line" | "row";
  } | null;
  importFile: boolean;
  message: string;
  stack: string | undefined;
  /** A failed system call's fields (isErrnoError), so that the CLI still reports it as one. */
  system?: { code: string; syscall: string; path: string | undefined };
}

function serializeError(err: unknown): SerializedError {
  if (err instanceof ImportRowError) {
    const { reason, line, column, field, unit } = err;
    return {
      importRow: { reason, line, column, field, unit },
      importFile: false,
      message: err.message,
      stack: err.stack,
    };
  }
  const e = err instanceof Error ? err : new Error(String(err));
  const system = isErrnoError(e) ? { code: e.code, syscall: e.syscall, path: e.path } : undefined;
  return {
    importRow: null,
    importFile: err instanceof ImportFileError,
    message: e.message,
    stack: e.stack,
    system,
  };
}

function deserializeError(s: SerializedError): Error {
  if (s.importRow !== null) return new ImportRowError(s.importRow.reason, s.importRow);
  if (s.importFile) return new ImportFileError(s.message);
  const err: NodeJS.ErrnoException = Object.assign(new Error(s.message), s.system);
  if (s.stack !== undefined) err.stack = s.stack;
  return err;
}
