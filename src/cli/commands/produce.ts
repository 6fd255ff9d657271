/**
 * strata produce <table> <file>: sends a JSONL file of delta events (docs/deltas.md), one per
 * line, to the table's topic, with the event's key as the message key so that one key's deltas
 * stay in one partition, in order.
 *
 * Every line is checked against the table schema first (the same decoder as ingest), and a file
 * with a bad line sends nothing: exit 7 with the line numbers and reasons. `--no-validate` sends
 * the lines as they are (bad ones then land in the dead-letter topic).
 */
import { Readable } from "node:stream";
import { createInterface } from "node:readline";
import type { Command } from "commander";
import { openImportInput } from "../../importer/import-input.js";
import { ImportFileError } from "../../importer/errors.js";
import { inputFileSize, type CliContext } from "../context.js";
import { ConfigError } from "../../shared/errors.js";
import { DeltaDecoder } from "../../ingest/delta-event.js";
import { InvalidDeltaError } from "../../ingest/errors.js";
import { KafkaDeltaProducer, kafkaClientOptions } from "../../ingest/kafka-delta-source.js";
import type { OutgoingMessage } from "../../ingest/delta-source.js";

const SEND_BATCH = 1000;
const MAX_REPORTED_LINES = 10;

interface ProduceOptions {
  validate: boolean;
  kafkaBrokers?: string;
}

export function registerProduceCommand(program: Command, ctx: (cmd: Command) => CliContext): void {
  program
    .command("produce <table> <file>")
    .description("send a JSONL file of delta events to the table's Kafka topic")
    .option("--kafka-brokers <list>", "host:port,... (env STRATA_KAFKA_BROKERS)")
    .option("--no-validate", "send lines as they are, without checking them against the schema")
    .action(async (table: string, file: string, o: ProduceOptions, cmd: Command) => {
      const c = ctx(cmd);
      const schema = c.schema(table);
      // Read twice (checked whole before anything is sent): a file, not standard input.
      if (file === "-")
        throw new ImportFileError(
          "produce reads its file twice (nothing is sent unless every line is valid): give a path, not -",
        );
      inputFileSize(file); // a missing file is named before anything is sent
      if (c.config.kafkaBrokers.length === 0) {
        throw new ConfigError(
          "Cannot produce: no Kafka brokers are configured (set STRATA_KAFKA_BROKERS or --kafka-brokers)",
        );
      }
      const decoder = new DeltaDecoder(schema, {
        maxMessageBytes: c.config.ingestMaxMessageBytes,
        maxValueBytes: c.config.ingestMaxValueBytes,
      });
      if (o.validate) await validateFile(file, decoder);
      const producer = new KafkaDeltaProducer(kafkaClientOptions(c.config, "strata-produce"));
      const started = performance.now();
      let sent = 0;
      try {
        let batch: OutgoingMessage[] = [];
        for await (const { text } of lines(file)) {
          batch.push({ key: keyOf(text), value: text, headers: { "content-type": "application/json" } });
          if (batch.length >= SEND_BATCH) {
            await producer.send(schema.topic, batch);
            sent += batch.length;
            batch = [];
          }
        }
        await producer.send(schema.topic, batch);
        sent += batch.length;
      } finally {
        await producer.close();
      }
      const seconds = (performance.now() - started) / 1000;
      c.print(
        { table, topic: schema.topic, sent, seconds },
        `${table}: sent ${sent} deltas to topic "${schema.topic}" in ${seconds.toFixed(1)} s`,
      );
    });
}

/** Decodes every line; throws InvalidDeltaError naming the bad lines (up to ten) and their reasons. */
async function validateFile(file: string, decoder: DeltaDecoder): Promise<void> {
  const bad: string[] = [];
  let badCount = 0;
  let firstProblem: InvalidDeltaError["problem"] = "wrong_type";
  for await (const { text, line } of lines(file)) {
    try {
      decoder.decode({ key: null, value: Buffer.from(text, "utf8"), timestampMs: 0 });
    } catch (err) {
      if (!(err instanceof InvalidDeltaError)) throw err;
      if (badCount++ === 0) firstProblem = err.problem;
      if (bad.length < MAX_REPORTED_LINES) bad.push(`line ${line}: ${err.message}`);
    }
  }
  if (badCount > 0) {
    const more = badCount > bad.length ? ` (and ${badCount - bad.length} more)` : "";
    throw new InvalidDeltaError(
      firstProblem,
      `Cannot produce "${file}": ${badCount} invalid line${badCount === 1 ? "" : "s"}, nothing was sent${more}:\n  ${bad.join("\n  ")}\n` +
        `Fix them, or pass --no-validate to send them anyway (they will land in the dead-letter topic)`,
    );
  }
}

/** Non-empty lines of a file (gzip-compressed or not), with their 1-based numbers. */
async function* lines(file: string): AsyncGenerator<{ text: string; line: number }> {
  const rl = createInterface({ input: Readable.from(openImportInput(file).stream), crlfDelay: Infinity });
  let line = 0;
  for await (const text of rl) {
    line++;
    if (text.trim() !== "") yield { text, line };
  }
}

/** The event's key, as the message key; null when the line names none (or is not JSON). */
function keyOf(text: string): string | null {
  try {
    const key = (JSON.parse(text) as { key?: unknown }).key;
    return typeof key === "string" && key !== "" ? key : null;
  } catch {
    return null;
  }
}
