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
import { ConfigError, UsageError } from "../../shared/errors.js";
import { DeltaDecoder } from "../../ingest/delta-event.js";
import { InvalidDeltaError } from "../../ingest/errors.js";
import { KafkaDeltaProducer, KafkaDeltaSource, kafkaClientOptions } from "../../ingest/kafka-delta-source.js";
import { readTopicToEnd } from "../../ingest/topic-reader.js";
import {
  detached,
  replayMessage,
  storedDeadLetter,
  type StoredDeadLetter,
} from "../../ingest/dead-letters.js";
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
        throw new UsageError(`--limit "${o.limit}" is not a count`);
      if (o.dryRun && !o.replay) throw new UsageError("--dry-run goes with --replay");
      if (c.config.kafkaBrokers.length === 0)
        throw new ConfigError(
          "No Kafka brokers are configured (set STRATA_KAFKA_BROKERS or --kafka-brokers)",
        );
      const topic = schema.topic + c.config.ingestDeadLetterSuffix;
      const kinds = o.kind ? new Set(o.kind.split(",").map((k) => k.trim())) : null;

      const replay = o.replay
        ? new Replay(
            topic,
            new DeltaDecoder(schema, {
              maxMessageBytes: c.config.ingestMaxMessageBytes,
              maxValueBytes: c.config.ingestMaxValueBytes,
            }),
            currentSnapshot(c, table),
            o.dryRun ? null : c.config,
            schema.topic,
          )
        : null;
      const byKind: Record<string, number> = {};
      let total = 0;
      let selected = 0;
      const newest: StoredDeadLetter[] = [];
      const source = new KafkaDeltaSource(kafkaClientOptions(c.config, "strata-dead-letters"));
      try {
        // Read as it comes, never whole: a dead-letter topic may hold millions.
        await readTopicToEnd(source, topic, {
          groupId: `strata-dead-letters.${schema.name}`,
          timeoutMs: READ_TIMEOUT_MS,
          onMessage: async (partition, message) => {
            const letter = storedDeadLetter(partition, message);
            total++;
            byKind[letter.kind] = (byKind[letter.kind] ?? 0) + 1;
            if (kinds && !kinds.has(letter.kind)) return;
            selected++;
            if (replay) await replay.offer(letter);
            else keepNewest(newest, letter, limit);
          },
        }).catch((err: unknown) => {
          // A table that never refused a delta has no dead-letter topic yet.
          if (/does not host this topic|UNKNOWN_TOPIC/i.test(String(err))) return 0;
          throw err;
        });
        await replay?.flush();
      } finally {
        await source.close();
        await replay?.close();
      }

      if (!replay) {
        const shown = keepNewest(newest, null, limit);
        c.print(
          {
            table,
            topic,
            total,
            selected,
            by_kind: byKind,
            dead_letters: shown.map((l) => describe(l, true)),
          },
          [
            `${table}: ${total} dead letter${total === 1 ? "" : "s"} in "${topic}"` +
              (total
                ? ` (${Object.entries(byKind)
                    .map(([k, n]) => `${k} ${n}`)
                    .join(", ")})`
                : ""),
            ...shown.map((l) => {
              const d = describe(l, false);
              return `${d.at}\t${d.kind}\tfrom ${d.source ?? "?"}\tkey ${JSON.stringify(d.key)}\t${d.reason}\n\t${d.value}`;
            }),
            ...(shown.length < selected ? [`(${selected - shown.length} older not shown: --limit)`] : []),
          ],
        );
        return;
      }
      const { outcomes, invalid } = replay;
      const verb = o.dryRun ? "would send" : "sent";
      c.print(
        {
          table,
          topic: schema.topic,
          dry_run: o.dryRun === true,
          selected,
          ...outcomes,
          still_invalid_examples: invalid,
        },
        [
          `${table}: ${verb} ${outcomes.sent} of ${selected} dead letter${selected === 1 ? "" : "s"} to "${schema.topic}"` +
            `; ${outcomes.still_invalid} still invalid, ${outcomes.stale} older than the stored row, ${outcomes.duplicate} duplicate${outcomes.duplicate === 1 ? "" : "s"}` +
            (replay.comparesEventTimes
              ? ""
              : " (no local version to compare event times with: none skipped as older)"),
          ...invalid.map((line) => `  still invalid: ${line}`),
        ],
      );
    });
}

/**
 * Keeps the newest `limit` dead letters by their original timestamps, detached from their fetch
 * responses; with `letter` null, returns them oldest first.
 */
function keepNewest(
  kept: StoredDeadLetter[],
  letter: StoredDeadLetter | null,
  limit: number,
): StoredDeadLetter[] {
  const trim = (): void => {
    kept.sort((a, b) => a.message.timestampMs - b.message.timestampMs);
    kept.splice(0, Math.max(0, kept.length - limit));
  };
  if (letter === null) {
    trim();
    return kept;
  }
  kept.push(detached(letter));
  if (kept.length > 2 * limit + 100) trim();
  return kept;
}

/**
 * What `--replay` does with each selected dead letter, in the order read: once per refused delta
 * (the topic may hold copies), only if it decodes now, and not over a newer stored row; sent in
 * batches (`config` null: a dry run, nothing is sent).
 */
class Replay {
  readonly outcomes: Record<Outcome, number> = { sent: 0, still_invalid: 0, stale: 0, duplicate: 0 };
  /** Up to ten still-invalid dead letters, with their reasons now. */
  readonly invalid: string[] = [];
  private readonly seen = new Set<string>();
  private batch: OutgoingMessage[] = [];
  private readonly producer: KafkaDeltaProducer | null;

  constructor(
    private readonly deadLetterTopic: string,
    private readonly decoder: DeltaDecoder,
    private readonly current: VersionSnapshot | null,
    config: CliContext["config"] | null,
    private readonly tableTopic: string,
  ) {
    this.producer = config && new KafkaDeltaProducer(kafkaClientOptions(config, "strata-dead-letters"));
  }

  get comparesEventTimes(): boolean {
    return this.current !== null;
  }

  async offer(letter: StoredDeadLetter): Promise<void> {
    if (letter.source !== null) {
      if (this.seen.has(letter.source)) {
        this.outcomes.duplicate++;
        return;
      }
      this.seen.add(letter.source);
    }
    let event;
    try {
      event = this.decoder.decode(letter.message);
    } catch (err) {
      if (!(err instanceof InvalidDeltaError)) throw err;
      this.outcomes.still_invalid++;
      if (this.invalid.length < 10)
        this.invalid.push(`${letter.partition}/${letter.offset} (${err.problem}): ${err.message}`);
      return;
    }
    const stored = this.current?.locate(event.key);
    if (stored?.status === "found" && stored.eventTimeMs > event.eventTimeMs) {
      this.outcomes.stale++;
      return;
    }
    this.outcomes.sent++;
    this.batch.push(replayMessage(this.deadLetterTopic, letter));
    if (this.batch.length >= SEND_BATCH) await this.flush();
  }

  async flush(): Promise<void> {
    const batch = this.batch;
    this.batch = [];
    await this.producer?.send(this.tableTopic, batch);
  }

  async close(): Promise<void> {
    await this.producer?.close();
  }
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
