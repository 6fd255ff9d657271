/** The worker of a two-thread import (parallel-import.ts): one range of the file into base parts. */
import { parentPort, workerData } from "node:worker_threads";
import { encodeRange, serializeError, type RangeJob } from "./parallel-import.js";

const job = workerData as RangeJob;
let lastPost = 0;
try {
  const done = encodeRange(job, (rows) => {
    const now = Date.now();
    if (now - lastPost < 100) return;
    lastPost = now;
    parentPort!.postMessage({ progress: rows });
  });
  parentPort!.postMessage({ done });
} catch (err) {
  parentPort!.postMessage({ error: serializeError(err) });
}
