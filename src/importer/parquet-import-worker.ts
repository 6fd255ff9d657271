/** The worker of a two-thread Parquet import (parquet-parts.ts): some row groups into base parts. */
import { workerData } from "node:worker_threads";
import { encodeRowGroups, type RowGroupJob } from "./parquet-parts.js";
import { workerMain } from "./import-threads.js";

await workerMain((onProgress) => encodeRowGroups(workerData as RowGroupJob, onProgress));
