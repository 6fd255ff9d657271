/** The ingest suite, provided by src/ingest's benchmark once it exists. */
import type { Metric } from "./metric.js";

export async function benchIngestSuite(_opts: { quick: boolean }): Promise<Metric[]> {
  throw new Error("The ingest benchmark is not part of this build yet");
}
