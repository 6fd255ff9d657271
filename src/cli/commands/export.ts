/**
 * strata export <table>: every row of a version as JSON lines that `strata import --format jsonl`
 * reads back to the same rows (the key field, `event_time_ms`, features by name; floats in their
 * shortest exact form, int64 beyond 2^53 as strings, bytes as base64), or as Parquet that
 * `strata import` reads back (cli/export-sinks.ts). Read from the data dir by a scan
 * (storage/version-scan.ts): every record CRC checked, one version throughout.
 */
import { closeSync, existsSync, fsyncSync, openSync, renameSync, rmSync } from "node:fs";
import { dirname, resolve } from "node:path";
import type { Command } from "commander";
import cliProgress from "cli-progress";
import { featureIndexes, parseFeaturesArg, parseVersionArg, type CliContext } from "../context.js";
import { EXIT } from "../exit-codes.js";
import { MappedSegmentCache } from "../../storage/mapped-segment.js";
import { newRowLocation, openSnapshot } from "../../storage/version-snapshot.js";
import { VersionScanner, WHOLE_VERSION, type ScanShard } from "../../storage/version-scan.js";
import { BatchStatus } from "../../storage/native.js";
import { featureKinds, type FeatureValue } from "../../format/schema.js";
import { eventTimeName } from "../../importer/row-coercion.js";
import { fsyncDir, tempPathFor } from "../../storage/durable-fs.js";
import { JsonlSink, ParquetSink, type ExportFormat, type RowSink } from "../export-sinks.js";
import { UsageError } from "../../shared/errors.js";

const CHUNK_ROWS = 4096;

export function registerExportCommand(program: Command, ctx: (cmd: Command) => CliContext): void {
  program
    .command("export <table>")
    .description("write every row of a version as JSON lines or Parquet that `strata import` reads back")
    .option(
      "--out <file>",
      "write to FILE (complete or not at all: a temp file renamed at the end); default stdout",
    )
    .option("--format <format>", "jsonl or parquet (default: parquet for an --out ending in .parquet or .pq)")
    .option("--version <n>", "a retained version (default: current)")
    .option("--features <names>", "comma-separated subset of features")
    .option("--shard <i/n>", "only part i of n (0 <= i < n): the n parts hold every row once between them")
    .option("--no-progress", "no progress bar")
    .action(
      (
        table: string,
        o: {
          out?: string;
          format?: string;
          version?: string;
          features?: string;
          shard?: string;
          progress: boolean;
        },
        cmd: Command,
      ) => {
        const c = ctx(cmd);
        // `-` is standard output (the default), as import reads `-` from standard input.
        const out = o.out === "-" ? undefined : o.out;
        if (out !== undefined && !existsSync(dirname(resolve(out))))
          throw new UsageError(`--out "${out}": its directory does not exist`);
        const format = exportFormat(o.format, out);
        const schema = c.schema(table);
        const store = c.store(table);
        const version = parseVersionArg(o.version) ?? store.requireCurrentVersion();
        store.requireRetained(version);
        const snapshot = openSnapshot(store, new MappedSegmentCache(), version, { verify: false, schema });
        const names = snapshot.features.map((f) => f.name);
        const kinds = featureKinds(snapshot);
        const wanted = featureIndexes(table, snapshot.features, parseFeaturesArg(o.features));
        const timeField = eventTimeName(schema, {});
        const scanner = new VersionScanner(snapshot, parseShard(o.shard));

        const temp = out ? tempPathFor(out) : null;
        // Parquet is written by hyparquet-writer under the same name: this fd claims the name and
        // makes the file durable at the end (fsync is the file's, whoever wrote it).
        const fd = temp ? openSync(temp, "wx") : 1;
        const columns = {
          key: schema.key,
          eventTime: timeField,
          features: wanted.map((f) => ({ name: names[f]!, kind: kinds[f]! })),
        };
        const sink: RowSink =
          format === "parquet" ? new ParquetSink(temp!, columns) : new JsonlSink(fd, columns);
        const total = snapshot.manifest.segments.reduce((n, s) => n + s.records, 0);
        const bar =
          o.progress && temp && process.stderr.isTTY && !c.json
            ? new cliProgress.SingleBar(
                { format: "export |{bar}| {value} of at most {total} records", hideCursor: true },
                cliProgress.Presets.shades_classic,
              )
            : null;
        bar?.start(total, 0);
        let rows = 0;
        let lost = 0;
        let walked = 0;
        try {
          const loc = newRowLocation();
          const values = new Array<FeatureValue>(wanted.length);
          for (let n = scanner.nextChunk(CHUNK_ROWS); n > 0; n = scanner.nextChunk(CHUNK_ROWS)) {
            const { keys, located } = scanner;
            for (let i = 0; i < n; i++) {
              if (located.status(i) !== BatchStatus.FOUND) {
                lost++;
                continue;
              }
              snapshot.locationOf(located, i, loc);
              for (let w = 0; w < wanted.length; w++) values[w] = snapshot.readAs(loc, wanted[w]!);
              sink.row(
                keys.bytes.toString("utf8", keys.bounds[2 * i], keys.bounds[2 * i + 1]),
                located.eventTimeMs(i),
                values,
              );
              rows++;
            }
            walked += n;
            bar?.update(walked);
          }
          sink.finish();
          if (temp) {
            fsyncSync(fd);
            closeSync(fd);
            renameSync(temp, out!);
            fsyncDir(dirname(out!));
          }
        } catch (err) {
          if (temp) {
            closeSync(fd);
            rmSync(temp, { force: true });
          }
          if ((err as NodeJS.ErrnoException).code === "EPIPE") return; // `strata export t | head`
          throw err;
        } finally {
          bar?.stop();
        }
        const summary = { table, version, rows, data_loss: lost, out: out ?? null };
        const text = `${table}: exported ${rows} row${rows === 1 ? "" : "s"} of v${version}${out ? ` to ${out}` : ""}`;
        if (lost > 0) {
          process.stderr.write(
            `strata: ${lost === 1 ? "1 record" : `${lost} records`} of v${version} failed ${lost === 1 ? "its CRC check and was" : "their CRC check and were"} left out; "strata verify ${table} --version ${version}" names the file\n`,
          );
          process.exitCode = EXIT.CORRUPT;
        }
        // The rows may be on stdout: the summary then goes to stderr.
        if (out) c.print(summary, text);
        else process.stderr.write(c.json ? JSON.stringify(summary) + "\n" : text + "\n");
      },
    );
}

/** `i/n` → shard i of n. */
function parseShard(arg: string | undefined): ScanShard {
  if (arg === undefined) return WHOLE_VERSION;
  const m = /^(\d+)\/(\d+)$/.exec(arg);
  const index = Number(m?.[1]);
  const count = Number(m?.[2]);
  if (!m || count < 1 || index >= count)
    throw new UsageError(`--shard "${arg}" is not i/n with 0 <= i < n (e.g. 0/4)`);
  return { index, count };
}

/** --format, or what --out's extension says; Parquet needs a file (its footer is written last). */
function exportFormat(format: string | undefined, out: string | undefined): ExportFormat {
  if (format !== undefined && format !== "jsonl" && format !== "parquet")
    throw new UsageError(`--format must be jsonl or parquet (got "${format}")`);
  const chosen = format ?? (out && /\.(parquet|pq)$/i.test(out) ? "parquet" : "jsonl");
  if (chosen === "parquet" && out === undefined) throw new UsageError("--format parquet needs --out FILE");
  return chosen;
}
