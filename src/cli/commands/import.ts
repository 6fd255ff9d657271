/** strata import <table> <file>: a CSV, JSONL or Parquet file becomes a new base version. */
import { writeSync, openSync, closeSync } from "node:fs";
import type { Command } from "commander";
import cliProgress from "cli-progress";
import { inputFileSize, retentionNote, type CliContext } from "../context.js";
import { VersionWriter } from "../../storage/version-writer.js";
import { EmptyImportError } from "../../storage/errors.js";
import { detectImportFormat, readImportRows, type ImportFileFormat } from "../../importer/import-reader.js";
import { readParquetRows } from "../../importer/parquet-reader.js";
import { openImportInput } from "../../importer/import-input.js";
import type { ImportRowError } from "../../importer/errors.js";
import { UsageError } from "../../shared/errors.js";

const FORMATS: readonly ImportFileFormat[] = ["csv", "jsonl", "parquet"];

export function registerImportCommand(program: Command, ctx: (cmd: Command) => CliContext): void {
  program
    .command("import <table> <file>")
    .description("import a CSV, JSONL or Parquet file as a new base version and publish it")
    .option("--format <format>", "csv, jsonl or parquet (default: from the file extension)")
    .option(
      "--skip-bad-rows <rejects-file>",
      "skip rows that do not parse, writing them and their reasons to this file",
    )
    .option("--allow-empty", "publish the import even if it has no rows (it empties the table)")
    .option("--dry-run", "read and type every row, report, and publish nothing")
    .option("--no-progress", "no progress bar")
    .action(
      async (
        table: string,
        file: string,
        o: {
          format?: string;
          skipBadRows?: string;
          allowEmpty?: boolean;
          dryRun?: boolean;
          progress: boolean;
        },
        cmd: Command,
      ) => {
        const c = ctx(cmd);
        const schema = c.schema(table);
        c.store(table).refuseIfPinned(); // a dry run too: it says what the import would do
        if (o.format !== undefined && !FORMATS.includes(o.format as ImportFileFormat))
          throw new UsageError(`--format must be csv, jsonl or parquet (got "${o.format}")`);
        // Standard input has no name to tell its format by, and Parquet needs a file: the command
        // line's mistakes (exit 2), before anything is read.
        if (file === "-" && o.format === undefined)
          throw new UsageError(
            "Cannot tell the format of standard input: give --format csv or --format jsonl",
          );
        const format = (o.format as ImportFileFormat | undefined) ?? detectImportFormat(file);
        if (file === "-" && format === "parquet")
          throw new UsageError(
            "Parquet is read from a file (its footer is at its end): give its path, not -",
          );
        // Standard input has no size: no progress bar then.
        const totalBytes = file === "-" ? 0 : inputFileSize(file);
        const bar =
          o.progress && totalBytes > 0 && process.stderr.isTTY && !c.json
            ? new cliProgress.SingleBar(
                {
                  format: `${table} [{bar}] {percentage}% | {value}/{total} MB | {rows} rows | {eta}s`,
                  stream: process.stderr,
                },
                cliProgress.Presets.shades_classic,
              )
            : null;
        bar?.start(Math.ceil(totalBytes / 1e6), 0, { rows: 0 });
        let rejects = 0;
        const rejectsFd = o.skipBadRows ? openSync(o.skipBadRows, "w") : null;
        const started = performance.now();
        try {
          const options = {
            defaultEventTimeMs: Date.now(),
            ...(rejectsFd === null
              ? {}
              : {
                  onBadRow: (err: ImportRowError, raw: string) => {
                    rejects++;
                    // A Parquet file has rows where a text file has lines; Parquet and JSONL name their columns.
                    const where =
                      format === "parquet"
                        ? { row: err.line, column: err.field }
                        : { line: err.line, column: format === "jsonl" ? err.field : err.column };
                    writeSync(rejectsFd, JSON.stringify({ ...where, reason: err.message, raw }) + "\n");
                  },
                }),
          };
          let bytesRead: () => number;
          let rows;
          if (format === "parquet") {
            const parquet = readParquetRows(file, schema, options);
            bytesRead = () => parquet.bytesRead;
            rows = parquet;
          } else {
            const input = openImportInput(file);
            bytesRead = input.bytesRead;
            rows = readImportRows(input.stream, format, schema, options);
          }
          const empty = () =>
            new EmptyImportError(
              table,
              rejects ? `all ${rejects} rows of ${file} were bad` : `${file} has no rows`,
            );
          if (o.dryRun) {
            let count = 0;
            for await (const batch of rows) {
              count += batch.length;
              bar?.update(Math.ceil(bytesRead() / 1e6), { rows: count });
            }
            bar?.stop();
            if (count === 0 && !o.allowEmpty) throw empty();
            c.print(
              { table, dry_run: true, rows: count, rejected_rows: rejects, bytes: totalBytes },
              `${table}: dry run: ${count} rows of ${file} read and typed, nothing published` +
                (rejects ? ` (${rejects} bad rows written to ${o.skipBadRows})` : ""),
            );
            return;
          }
          const store = c.store(table);
          const manifest = await new VersionWriter(store, schema)
            .importRows(rows, {
              onProgress: (n) => bar?.update(Math.ceil(bytesRead() / 1e6), { rows: n }),
              allowEmpty: o.allowEmpty === true,
            })
            .catch((err: unknown) => {
              throw err instanceof EmptyImportError ? empty() : err;
            });
          bar?.update(Math.ceil(totalBytes / 1e6));
          bar?.stop();
          const seconds = (performance.now() - started) / 1000;
          const records = manifest.segments.reduce((n, s) => n + s.records, 0);
          const deleted = c.retain(store);
          c.print(
            {
              table,
              version: manifest.version,
              records,
              rejected_rows: rejects,
              bytes: totalBytes,
              seconds,
              deleted_versions: deleted,
            },
            `${table}: imported ${records} rows from ${file} as v${manifest.version} in ${seconds.toFixed(1)} s` +
              (rejects ? ` (${rejects} bad rows written to ${o.skipBadRows})` : "") +
              retentionNote(deleted),
          );
        } finally {
          bar?.stop();
          if (rejectsFd !== null) closeSync(rejectsFd);
        }
      },
    );
}
