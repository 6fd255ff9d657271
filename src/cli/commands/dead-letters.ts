/**
 * strata dead-letters <table>: what the table's dead-letter topic holds (docs/deltas.md, "Dead
 * letters"), and `--replay` to send the ones that are valid now (after a config change, or a
 * fixed decoder) to the table's topic again.
 *
 * A replay sends each refused delta once (the topic may hold copies: delivery is at least once),
 * with its original key, value, headers and timestamp, marked `strata-replayed-from`. Since ingest
 * applies a topic in offset order, a late delta would overwrite what came after it: a delta
 * whose key has a newer row in the current version (a later event time) is skipped instead.
 */
import type { Command } from "commander";
import type { CliContext } from "../context.js";
import { ConfigError } from "../../shared/errors.js";
import { DeltaDecoder } from "../../ingest/delta-event.js";
import { InvalidDeltaError } from "../../ingest/errors.js";
import { KafkaDeltaProducer, KafkaDeltaSource, kafkaClientOptions } from "../../ingest/kafka-delta-source.js";
import { readTopicToEnd } from "../../ingest/topic-reader.js";
import { replayMessage, storedDeadLetter, type StoredDeadLetter } from "../../ingest/dead-letters.js";
import { MappedSegmentCache } from "../../storage/mapped-segment.js";
import { openSnapshot, type VersionSnapshot } from "../../storage/version-snapshot.js";
import type { OutgoingMessage } from "../../ingest/delta-source.js";

const READ_TIMEOUT_MS = 60_000;
const SEND_BATCH = 1000;
const SHOWN_VALUE_CHARS = 200;

interface DeadLettersOptions {
  kind?: string;
  limit: string;
  replay?: boolean;
  dryRun?: boolean;
  kafkaBrokers?: string;
}

/** What a replay does with one dead letter. */
type Outcome = "sent" | "still_invalid" | "stale" | "duplicate";

export function registerDeadLettersCommand(program: Command, ctx: (cmd: Command) => CliContext): void {
  program
    .command("dead-letters <table>")
    .description(
      "list the table's dead letters (reasons, kinds, where from); --replay sends the valid ones again",
    )
    .option("--kind <kinds>", "only these problem kinds (comma-separated, e.g. unknown_feature,wrong_type)")
    .option("--limit <n>", "list at most the newest N (counts cover all)", "50")
    .option("--replay", "send the dead letters that decode with the current config to the table's topic")
    .option("--dry-run", "with --replay: say what would be sent, send nothing")
    .option("--kafka-brokers <list>", "host:port,... (env STRATA_KAFKA_BROKERS)")
    .action(async (table: string, o: DeadLettersOptions, cmd: Command) => {
      const c = ctx(cmd);
      const schema = c.schema(table);
      const limit = Number(o.limit);
      if (!Number.isSafeInteger(limit) || limit < 0)
        throw new RangeError(`--limit "${o.limit}" is not a count`);
      if (o.dryRun && !o.replay) throw new RangeError("--dry-run goes with --replay");
      if (c.config.kafkaBrokers.length === 0)
        throw new ConfigError(
          "No Kafka brokers are configured (set STRATA_KAFKA_BROKERS or --kafka-brokers)",
        );
      const topic = schema.topic + c.config.ingestDeadLetterSuffix;
      const kinds = o.kind ? new Set(o.kind.split(",").map((k) => k.trim())) : null;

      const source = new KafkaDeltaSource(kafkaClientOptions(c.config, "strata-dead-letters"));
      let letters: StoredDeadLetter[];
      try {
        const read = await readTopicToEnd(source, topic, {
          groupId: `strata-dead-letters.${schema.name}`,
          timeoutMs: READ_TIMEOUT_MS,
        }).catch((err: unknown) => {
          // A table that never refused a delta has no dead-letter topic yet.
          if (/does not host this topic|UNKNOWN_TOPIC/i.test(String(err))) return [];
          throw err;
        });
        letters = read.map((r) => storedDeadLetter(r.partition, r.message));
      } finally {
        await source.close();
      }
      const byKind: Record<string, number> = {};
      for (const l of letters) byKind[l.kind] = (byKind[l.kind] ?? 0) + 1;
      const selected = kinds ? letters.filter((l) => kinds.has(l.kind)) : letters;

      if (!o.replay) {
        // The newest `limit`, oldest first (across partitions, by their original timestamps).
        const byTime = [...selected].sort((a, b) => a.message.timestampMs - b.message.timestampMs);
        const shown = byTime.slice(Math.max(0, byTime.length - limit));
        c.print(
          {
            table,
            topic,
            total: letters.length,
            selected: selected.length,
            by_kind: byKind,
            dead_letters: shown.map((l) => describe(l, true)),
          },
          [
            `${table}: ${letters.length} dead letter${letters.length === 1 ? "" : "s"} in "${topic}"` +
              (letters.length
                ? ` (${Object.entries(byKind)
                    .map(([k, n]) => `${k} ${n}`)
                    .join(", ")})`
                : ""),
            ...shown.map((l) => {
              const d = describe(l, false);
              return `${d.at}\t${d.kind}\tfrom ${d.source ?? "?"}\tkey ${JSON.stringify(d.key)}\t${d.reason}\n\t${d.value}`;
            }),
            ...(shown.length < selected.length
              ? [`(${selected.length - shown.length} older not shown: --limit)`]
              : []),
          ],
        );
        return;
      }

      const decoder = new DeltaDecoder(schema, {
        maxMessageBytes: c.config.ingestMaxMessageBytes,
        maxValueBytes: c.config.ingestMaxValueBytes,
      });
      const current = currentSnapshot(c, table);
      const outcomes: Record<Outcome, number> = { sent: 0, still_invalid: 0, stale: 0, duplicate: 0 };
      const invalid: string[] = [];
      const seen = new Set<string>();
      const toSend: OutgoingMessage[] = [];
      for (const letter of selected) {
        if (letter.source !== null && seen.has(letter.source)) {
          outcomes.duplicate++;
          continue;
        }
        if (letter.source !== null) seen.add(letter.source);
        let event;
        try {
          event = decoder.decode(letter.message);
        } catch (err) {
          if (!(err instanceof InvalidDeltaError)) throw err;
          outcomes.still_invalid++;
          if (invalid.length < 10)
            invalid.push(`${letter.partition}/${letter.offset} (${err.problem}): ${err.message}`);
          continue;
        }
        const stored = current?.locate(event.key);
        if (stored?.status === "found" && stored.eventTimeMs > event.eventTimeMs) {
          outcomes.stale++;
          continue;
        }
        toSend.push(replayMessage(topic, letter));
      }
      if (!o.dryRun && toSend.length > 0) {
        const producer = new KafkaDeltaProducer(kafkaClientOptions(c.config, "strata-dead-letters"));
        try {
          for (let i = 0; i < toSend.length; i += SEND_BATCH)
            await producer.send(schema.topic, toSend.slice(i, i + SEND_BATCH));
        } finally {
          await producer.close();
        }
      }
      outcomes.sent = toSend.length;
      const verb = o.dryRun ? "would send" : "sent";
      c.print(
        {
          table,
          topic: schema.topic,
          dry_run: o.dryRun === true,
          selected: selected.length,
          ...outcomes,
          still_invalid_examples: invalid,
        },
        [
          `${table}: ${verb} ${outcomes.sent} of ${selected.length} dead letter${selected.length === 1 ? "" : "s"} to "${schema.topic}"` +
            `; ${outcomes.still_invalid} still invalid, ${outcomes.stale} older than the stored row, ${outcomes.duplicate} duplicate${outcomes.duplicate === 1 ? "" : "s"}` +
            (current ? "" : " (no local version to compare event times with: none skipped as older)"),
          ...invalid.map((line) => `  still invalid: ${line}`),
        ],
      );
    });
}

/** The table's current version in the local data dir, to compare event times with; null without one. */
function currentSnapshot(c: CliContext, table: string): VersionSnapshot | null {
  const store = c.store(table);
  const version = store.currentVersion();
  if (version === null) return null;
  return openSnapshot(store, new MappedSegmentCache(), version, { verify: false, schema: c.schema(table) });
}

/** A dead letter as listed; the value cut to SHOWN_VALUE_CHARS unless `whole`. */
function describe(l: StoredDeadLetter, whole: boolean) {
  const text = (b: Buffer | null): string | null => (b === null ? null : b.toString("utf8"));
  const value = text(l.message.value);
  return {
    at: `${l.partition}/${l.offset}`,
    kind: l.kind,
    reason: l.reason,
    source: l.source,
    key: text(l.message.key),
    timestamp_ms: l.message.timestampMs,
    value:
      !whole && value !== null && value.length > SHOWN_VALUE_CHARS
        ? value.slice(0, SHOWN_VALUE_CHARS) + "…"
        : value,
  };
}
