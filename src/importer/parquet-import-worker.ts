/** The worker of a two-thread Parquet import (parquet-parts.ts): some row groups into base parts. */
import { parentPort, workerData } from "node:worker_threads";
import { encodeRowGroups, serializeError, type RowGroupJob } from "./parquet-parts.js";

const job = workerData as RowGroupJob;
let lastPost = 0;
try {
  const done = await encodeRowGroups(job, (rows) => {
    const now = Date.now();
    if (now - lastPost < 100) return;
    lastPost = now;
    parentPort!.postMessage({ progress: rows });
  });
  parentPort!.postMessage({ done });
} catch (err) {
  parentPort!.postMessage({ error: serializeError(err) });
}
