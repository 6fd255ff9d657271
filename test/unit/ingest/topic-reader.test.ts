import { describe, expect, it } from "vitest";
import { readTopicToEnd } from "../../../src/ingest/topic-reader.js";
import { FakeDeltaSource, FakeKafka } from "../../helpers/fake-delta-source.js";

describe("readTopicToEnd", () => {
  it("reads every partition up to its end at the start, in offset order, and stops", async () => {
    const kafka = new FakeKafka();
    kafka.batchSize = 3;
    kafka.createTopic("t.dlq", 3);
    for (let i = 0; i < 10; i++) kafka.produce("t.dlq", i % 2, { key: `k${i}`, value: `v${i}` });
    kafka.skipOffsets("t.dlq", 1, 4); // the partition's last offsets hold no message
    const source = new FakeDeltaSource(kafka);
    const reading = readTopicToEnd(source, "t.dlq", { groupId: "g", timeoutMs: 5000, idleMs: 200 });
    kafka.produce("t.dlq", 0, { key: "late", value: "after the start" });
    const read = await reading;
    expect(read.map((r) => [r.partition, Number(r.message.offset), String(r.message.value)])).toEqual([
      [0, 0, "v0"],
      [0, 1, "v2"],
      [0, 2, "v4"],
      [0, 3, "v6"],
      [0, 4, "v8"],
      [1, 0, "v1"],
      [1, 1, "v3"],
      [1, 2, "v5"],
      [1, 3, "v7"],
      [1, 4, "v9"],
    ]);
    expect(source.activeSubscriptions).toBe(0);
  });

  it("answers an empty topic without subscribing", async () => {
    const kafka = new FakeKafka();
    kafka.createTopic("empty", 2);
    const source = new FakeDeltaSource(kafka);
    expect(await readTopicToEnd(source, "empty", { groupId: "g", timeoutMs: 1000 })).toEqual([]);
    expect(source.subscribeCalls).toBe(0);
  });
});
