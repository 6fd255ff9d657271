/**
 * Request metrics are tallied in plain arrays and turned into Prometheus samples at scrape time
 * (serve/metrics.ts): what a scrape shows must be what prom-client's own counter and histogram
 * would have shown.
 */
import { describe, expect, it } from "vitest";
import { status } from "@grpc/grpc-js";
import { AggregatorRegistry } from "prom-client";
import { ServerMetrics } from "../../../src/serve/metrics.js";

const lines = (text: string, prefix: string): string[] =>
  text.split("\n").filter((l) => l.startsWith(prefix));

describe("request metrics", () => {
  it("counts requests by method and code, and buckets their latency cumulatively", async () => {
    const m = new ServerMetrics();
    m.observeRequest("StreamFeatures", status.OK, 0.00003);
    m.observeRequest("StreamFeatures", status.OK, 0.0003);
    m.observeRequest("StreamFeatures", status.OK, 2);
    m.observeRequest("GetFeatures", status.NOT_FOUND, 0.001);
    m.observeRequest("GetFeatures", 99, 0.001); // not a gRPC code: counted as UNKNOWN
    const text = await m.registry.metrics();
    expect(text).toContain("# TYPE strata_grpc_request_duration_seconds histogram");
    expect(lines(text, "strata_grpc_requests_total").sort()).toEqual([
      'strata_grpc_requests_total{method="GetFeatures",code="NOT_FOUND"} 1',
      'strata_grpc_requests_total{method="GetFeatures",code="UNKNOWN"} 1',
      'strata_grpc_requests_total{method="StreamFeatures",code="OK"} 3',
    ]);
    const stream = lines(text, "strata_grpc_request_duration_seconds").filter((l) =>
      l.includes('method="StreamFeatures"'),
    );
    expect(stream).toEqual([
      ...[
        ["0.00005", 1],
        ["0.0001", 1],
        ["0.00025", 1],
        ["0.0005", 2],
        ["0.001", 2],
        ["0.0025", 2],
        ["0.005", 2],
        ["0.01", 2],
        ["0.05", 2],
        ["0.25", 2],
        ["1", 2],
        ["+Inf", 3],
      ].map(
        ([le, n]) => `strata_grpc_request_duration_seconds_bucket{le="${le}",method="StreamFeatures"} ${n}`,
      ),
      'strata_grpc_request_duration_seconds_sum{method="StreamFeatures"} 2.00033',
      'strata_grpc_request_duration_seconds_count{method="StreamFeatures"} 3',
    ]);
    // A bound is inclusive (le): an observation equal to it falls in its bucket.
    m.observeRequest("ScanTable", status.OK, 0.001);
    expect(await m.registry.metrics()).toContain(
      'strata_grpc_request_duration_seconds_bucket{le="0.001",method="ScanTable"} 1',
    );
  });

  it("exports each ingestor's state as 1 for its state and 0 for the others, so pinned and blocked can alert", async () => {
    const m = new ServerMetrics();
    const states = { users: "blocked", items: "consuming" } as const;
    m.exportIngest(["users", "items"], (t) => ({
      state: states[t as keyof typeof states],
      kafkaLag: 5,
      eventTimeLagMs: 1000,
      lastPublishMs: null,
      counters: { deadLetters: 0 },
    }));
    const text = await m.registry.metrics();
    const on = lines(text, "strata_ingest_state").filter((l) => l.endsWith(" 1"));
    expect(on.sort()).toEqual([
      'strata_ingest_state{table="items",state="consuming"} 1',
      'strata_ingest_state{table="users",state="blocked"} 1',
    ]);
    expect(lines(text, "strata_ingest_state{")).toHaveLength(12);
  });

  it("sums across --workers as prom-client's cluster aggregation does", async () => {
    const [a, b] = [new ServerMetrics(), new ServerMetrics()];
    a.observeRequest("GetFeatures", status.OK, 0.001);
    b.observeRequest("GetFeatures", status.OK, 0.002);
    b.observeRequest("GetFeatures", status.NOT_FOUND, 0.1);
    const summed = AggregatorRegistry.aggregate([
      await a.registry.getMetricsAsJSON(),
      await b.registry.getMetricsAsJSON(),
    ]);
    const text = await summed.metrics();
    expect(text).toContain('strata_grpc_requests_total{method="GetFeatures",code="OK"} 2');
    expect(text).toContain('strata_grpc_request_duration_seconds_bucket{le="0.001",method="GetFeatures"} 1');
    expect(text).toContain('strata_grpc_request_duration_seconds_bucket{le="0.0025",method="GetFeatures"} 2');
    expect(text).toContain('strata_grpc_request_duration_seconds_count{method="GetFeatures"} 3');
  });

  it("starts over when the registry is reset", async () => {
    const m = new ServerMetrics();
    m.observeRequest("GetFeatures", status.OK, 0.001);
    m.registry.resetMetrics();
    const text = await m.registry.metrics();
    expect(lines(text, "strata_grpc_request")).toEqual([]);
  });
});
