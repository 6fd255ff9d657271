/** The worker of a two-thread CSV import (parallel-import.ts): one range of the file into base parts. */
import { workerData } from "node:worker_threads";
import { encodeRange, type RangeJob } from "./parallel-import.js";
import { workerMain } from "./import-threads.js";

await workerMain((onProgress) => encodeRange(workerData as RangeJob, onProgress));
