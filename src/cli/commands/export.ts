/**
 * strata export <table>: every row of a version as JSON lines that `strata import --format jsonl`
 * reads back to the same rows (the key field, `event_time_ms`, features by name; floats in their
 * shortest exact form, int64 beyond 2^53 as strings, bytes as base64). Read from the data dir by
 * a scan (storage/version-scan.ts): every record CRC checked, one version throughout.
 */
import { closeSync, fsyncSync, openSync, renameSync, rmSync, writeSync } from "node:fs";
import { dirname } from "node:path";
import type { Command } from "commander";
import cliProgress from "cli-progress";
import { featureIndexes, parseFeaturesArg, parseVersionArg, type CliContext } from "../context.js";
import { EXIT } from "../exit-codes.js";
import { MappedSegmentCache } from "../../storage/mapped-segment.js";
import { newRowLocation, openSnapshot } from "../../storage/version-snapshot.js";
import { VersionScanner, WHOLE_VERSION, type ScanShard } from "../../storage/version-scan.js";
import { BatchStatus } from "../../storage/native.js";
import { featureKinds } from "../../format/schema.js";
import { featureValueToJson, type JsonValue } from "../../format/value-json.js";
import { eventTimeName } from "../../importer/row-coercion.js";
import { fsyncDir, tempPathFor } from "../../storage/durable-fs.js";

const CHUNK_ROWS = 4096;
/** Output is written in pieces of about this many bytes. */
const WRITE_BYTES = 1 << 20;

export function registerExportCommand(program: Command, ctx: (cmd: Command) => CliContext): void {
  program
    .command("export <table>")
    .description("write every row of a version as JSON lines that `strata import --format jsonl` reads back")
    .option(
      "--out <file>",
      "write to FILE (complete or not at all: a temp file renamed at the end); default stdout",
    )
    .option("--version <n>", "a retained version (default: current)")
    .option("--features <names>", "comma-separated subset of features")
    .option("--shard <i/n>", "only part i of n (0 <= i < n): the n parts hold every row once between them")
    .option("--no-progress", "no progress bar")
    .action(
      (
        table: string,
        o: { out?: string; version?: string; features?: string; shard?: string; progress: boolean },
        cmd: Command,
      ) => {
        const c = ctx(cmd);
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

        const temp = o.out ? tempPathFor(o.out) : null;
        const fd = temp ? openSync(temp, "wx") : 1;
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
          let out = "";
          for (let n = scanner.nextChunk(CHUNK_ROWS); n > 0; n = scanner.nextChunk(CHUNK_ROWS)) {
            const { keys, located } = scanner;
            for (let i = 0; i < n; i++) {
              if (located.status(i) !== BatchStatus.FOUND) {
                lost++;
                continue;
              }
              loc.status = "found";
              loc.segment = snapshot.probeOrder[located.segment(i)]!;
              loc.valueOffset = located.valueOffset(i);
              loc.valueLength = located.valueLength(i);
              const row: Record<string, JsonValue> = {
                [schema.key]: keys.bytes.toString("utf8", keys.bounds[2 * i], keys.bounds[2 * i + 1]),
              };
              if (timeField) row[timeField] = located.eventTimeMs(i);
              for (const f of wanted) row[names[f]!] = featureValueToJson(kinds[f]!, snapshot.readAs(loc, f));
              out += JSON.stringify(row) + "\n";
              rows++;
            }
            walked += n;
            bar?.update(walked);
            if (out.length >= WRITE_BYTES) {
              writeAll(fd, out);
              out = "";
            }
          }
          writeAll(fd, out);
          if (temp) {
            fsyncSync(fd);
            closeSync(fd);
            renameSync(temp, o.out!);
            fsyncDir(dirname(o.out!));
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
        const summary = { table, version, rows, data_loss: lost, out: o.out ?? null };
        const text = `${table}: exported ${rows} row${rows === 1 ? "" : "s"} of v${version}${o.out ? ` to ${o.out}` : ""}`;
        if (lost > 0) {
          process.stderr.write(
            `strata: ${lost === 1 ? "1 record" : `${lost} records`} of v${version} failed ${lost === 1 ? "its CRC check and was" : "their CRC check and were"} left out; "strata verify ${table} --version ${version}" names the file\n`,
          );
          process.exitCode = EXIT.CORRUPT;
        }
        // The rows may be on stdout: the summary then goes to stderr.
        if (o.out) c.print(summary, text);
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
    throw new RangeError(`--shard "${arg}" is not i/n with 0 <= i < n (e.g. 0/4)`);
  return { index, count };
}

/** Writes all of `text` (a pipe may take less than asked at a time). */
function writeAll(fd: number, text: string): void {
  const bytes = Buffer.from(text, "utf8");
  for (let done = 0; done < bytes.length;) {
    try {
      done += writeSync(fd, bytes, done, bytes.length - done);
    } catch (err) {
      // A non-blocking stdout pipe that is full: wait for the reader, then go on.
      if ((err as NodeJS.ErrnoException).code !== "EAGAIN") throw err;
      Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 5);
    }
  }
}
