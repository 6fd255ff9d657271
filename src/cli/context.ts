/** What every command needs: the parsed config, the tables, and an output that honours --json. */
import { statSync, type Stats } from "node:fs";
import { loadConfig, type Config, type ConfigFlags } from "../config/config.js";
import { findTable, loadTablesConfig, type TablesConfig } from "../config/tables-config.js";
import { TableStore } from "../storage/table-store.js";
import { TableNotFoundError } from "../storage/errors.js";
import type { TableSchema } from "../format/schema.js";
import { ImportFileError } from "../importer/errors.js";
import { errorMessage, UsageError } from "../shared/errors.js";

export interface GlobalOptions extends ConfigFlags {
  json?: boolean;
}

export class CliContext {
  readonly config: Config;
  private tablesConfig: TablesConfig | null = null;

  constructor(readonly options: GlobalOptions) {
    this.config = loadConfig(options);
  }

  get json(): boolean {
    return this.options.json === true;
  }

  get tables(): TablesConfig {
    this.tablesConfig ??= loadTablesConfig(this.config.tablesConfigPath);
    return this.tablesConfig;
  }

  schema(table: string): TableSchema {
    const schema = findTable(this.tables, table);
    if (!schema) throw new TableNotFoundError(table);
    return schema;
  }

  store(table: string): TableStore {
    return new TableStore(this.config.dataDir, this.schema(table).name);
  }

  /**
   * Retention after a version this command published (import, compact), as ingest applies it after
   * its own: the newest STRATA_KEEP_VERSIONS versions stay (and the current and pinned ones). A
   * failure is only a warning, since the version is published. Returns the versions deleted.
   */
  retain(store: TableStore): number[] {
    try {
      return store.gc(this.config.keepVersions).versions;
    } catch (err) {
      process.stderr.write(
        `strata: warning: retention (gc) failed after the publish: ${errorMessage(err)}\n`,
      );
      return [];
    }
  }

  /** Prints `data` as JSON with --json, else the human `text` (lines). */
  print(data: unknown, text: string | string[]): void {
    if (this.json) process.stdout.write(JSON.stringify(data, jsonReplacer) + "\n");
    else process.stdout.write((Array.isArray(text) ? text.join("\n") : text) + "\n");
  }
}

/** `; retention deleted v1, v2` for a command's human output, or nothing. */
export function retentionNote(deleted: readonly number[]): string {
  return deleted.length ? `; retention deleted ${deleted.map((v) => `v${v}`).join(", ")}` : "";
}

export function jsonReplacer(_key: string, value: unknown): unknown {
  return typeof value === "bigint" ? value.toString() : value;
}

export function parseVersionArg(v: string | undefined): number | undefined {
  if (v === undefined) return undefined;
  const n = Number(String(v).replace(/^v0*/, ""));
  if (!Number.isSafeInteger(n) || n < 1)
    throw new UsageError(`"${v}" is not a version (expected a number such as 42 or v00000042)`);
  return n;
}

/**
 * The size of an input file (import, produce); one that is missing, unreadable or a directory is
 * bad input (exit 7), named.
 */
export function inputFileSize(file: string): number {
  let stat: Stats;
  try {
    stat = statSync(file);
  } catch (err) {
    throw new ImportFileError(`Cannot read input file: ${errorMessage(err)}`, { cause: err });
  }
  if (stat.isDirectory()) throw new ImportFileError(`Input file "${file}" is a directory`);
  return stat.size;
}

/**
 * The indexes in `features` (a version's reader features) of the names a command was given, in
 * that order; all of them when none were given. An unknown name is a bad argument (exit 2).
 */
export function featureIndexes(
  table: string,
  features: readonly { name: string }[],
  wanted: readonly string[],
): number[] {
  const names = features.map((f) => f.name);
  if (wanted.length === 0) return names.map((_, i) => i);
  return wanted.map((name) => {
    const i = names.indexOf(name);
    if (i < 0) throw new UsageError(`Table "${table}" has no feature "${name}"`);
    return i;
  });
}

/** `--features a,b` → ["a", "b"]; absent → []. */
export const parseFeaturesArg = (arg: string | undefined): string[] =>
  arg ? arg.split(",").map((f) => f.trim()) : [];
