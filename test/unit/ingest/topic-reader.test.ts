import { describe, expect, it } from "vitest";
import { readTopicToEnd } from "../../../src/ingest/topic-reader.js";
import { UnavailableError } from "../../../src/shared/errors.js";
import { FakeDeltaSource, FakeKafka } from "../../helpers/fake-delta-source.js";

describe("readTopicToEnd", () => {
  it("hands over every message up to each partition's end at the start, in offset order, and stops", async () => {
    const kafka = new FakeKafka();
    kafka.batchSize = 3;
    kafka.createTopic("t.dlq", 3);
    for (let i = 0; i < 10; i++) kafka.produce("t.dlq", i % 2, { key: `k${i}`, value: `v${i}` });
    kafka.skipOffsets("t.dlq", 1, 4); // the partition's last offsets hold no message
    const source = new FakeDeltaSource(kafka);
    const got: Record<number, string[]> = { 0: [], 1: [] };
    const reading = readTopicToEnd(source, "t.dlq", {
      groupId: "g",
      timeoutMs: 5000,
      idleMs: 200,
      onMessage: async (partition, m) => {
        await new Promise((r) => setTimeout(r, 1)); // a slow consumer holds the next batch back
        got[partition]!.push(`${m.offset}:${String(m.value)}`);
      },
    });
    kafka.produce("t.dlq", 0, { key: "late", value: "after the start" });
    expect(await reading).toBe(10);
    expect(got).toEqual({
      0: ["0:v0", "1:v2", "2:v4", "3:v6", "4:v8"],
      1: ["0:v1", "1:v3", "2:v5", "3:v7", "4:v9"],
    });
    expect(source.activeSubscriptions).toBe(0);
  });

  it("answers an empty topic without subscribing, and fails when nothing comes at all", async () => {
    const kafka = new FakeKafka();
    kafka.createTopic("empty", 2);
    const source = new FakeDeltaSource(kafka);
    const none = { groupId: "g", timeoutMs: 1000, onMessage: () => {} };
    expect(await readTopicToEnd(source, "empty", none)).toBe(0);
    expect(source.subscribeCalls).toBe(0);

    kafka.createTopic("stuck", 1);
    kafka.produce("stuck", 0, { value: "never delivered" });
    kafka.batchSize = 0; // the broker answers no fetch
    await expect(readTopicToEnd(source, "stuck", { ...none, timeoutMs: 300 })).rejects.toThrow(
      UnavailableError,
    );
    expect(source.activeSubscriptions).toBe(0);
  });
});
