/**
 * strata diff <table>: what changed between two versions (storage/version-diff.ts): rows added,
 * removed and changed in value, counted, with some of their keys. By default the current version
 * against its parent: what the last import, ingest publish or compaction did.
 */
import type { Command } from "commander";
import { parseVersionArg, type CliContext } from "../context.js";
import { EXIT } from "../exit-codes.js";
import { MappedSegmentCache } from "../../storage/mapped-segment.js";
import { openSnapshot } from "../../storage/version-snapshot.js";
import { diffVersions } from "../../storage/version-diff.js";
import { UsageError } from "../../shared/errors.js";

export function registerDiffCommand(program: Command, ctx: (cmd: Command) => CliContext): void {
  program
    .command("diff <table>")
    .description(
      "rows added, removed and changed between two versions (default: the current one and its parent)",
    )
    .option("--from <n>", "the older version (default: the parent of --to)")
    .option("--to <n>", "the newer version (default: current)")
    .option("--keys <n>", "keys shown of each kind", "5")
    .action((table: string, o: { from?: string; to?: string; keys: string }, cmd: Command) => {
      const c = ctx(cmd);
      const schema = c.schema(table);
      const store = c.store(table);
      const sampleKeys = Number(o.keys);
      if (!Number.isSafeInteger(sampleKeys) || sampleKeys < 0)
        throw new UsageError(`--keys must be a count (got "${o.keys}")`);
      const to = parseVersionArg(o.to) ?? store.requireCurrentVersion();
      store.requireRetained(to);
      let from = parseVersionArg(o.from);
      if (from === undefined) {
        const parent = store.readManifest(to).manifest.parent;
        if (parent === null) throw new UsageError(`v${to} of "${table}" has no parent: give --from`);
        from = parent;
      }
      store.requireRetained(from);
      const cache = new MappedSegmentCache();
      const open = (v: number) => openSnapshot(store, cache, v, { verify: false, schema });
      const d = diffVersions(open(from), open(to), sampleKeys);
      const shown = (kind: string, keys: string[], count: number) =>
        keys.length === 0 ? [] : [`  ${kind}: ${keys.join(" ")}${count > keys.length ? " …" : ""}`];
      c.print({ table, ...d }, [
        `${table}: v${from} → v${to}: ${d.added} added, ${d.removed} removed, ${d.changed} changed, ${d.unchanged} unchanged`,
        ...shown("added", d.samples.added, d.added),
        ...shown("removed", d.samples.removed, d.removed),
        ...shown("changed", d.samples.changed, d.changed),
      ]);
      if (d.damaged > 0) {
        process.stderr.write(
          `strata: ${d.damaged} record${d.damaged === 1 ? "" : "s"} failed the CRC check and ${d.damaged === 1 ? "was" : "were"} left out; "strata verify ${table}" names the file\n`,
        );
        process.exitCode = EXIT.CORRUPT;
      }
    });
}
