/**
 * strata backup / restore: a version copied, every file checked, into a directory that is a data dir of its
 * own (`strata --data-dir <dir> versions|verify|get|serve` read it), and a backed-up version
 * published again as a new version of the live table.
 */
import { readFileSync } from "node:fs";
import type { Command } from "commander";
import { parseVersionArg, retentionNote, type CliContext } from "../context.js";
import { TableStore } from "../../storage/table-store.js";
import { copySegments } from "../../storage/version-copy.js";
import { requireVerified } from "../../storage/version-verify.js";
import { NoVersionError, VersionNotFoundError } from "../../storage/errors.js";
import { requireReadable } from "../../storage/version-snapshot.js";

export function registerBackupCommands(program: Command, ctx: (cmd: Command) => CliContext): void {
  program
    .command("backup <table> <dir>")
    .description(
      "copy a version (default: the current one), every file checked, into <dir>, a data dir of its own",
    )
    .option("--version <n>", "the retained version to back up")
    .action((table: string, dir: string, o: { version?: string }, cmd: Command) => {
      const c = ctx(cmd);
      const store = c.store(table);
      const version = parseVersionArg(o.version) ?? store.requireCurrentVersion();
      store.requireRetained(version);
      const loaded = store.readManifest(version);
      const backup = new TableStore(dir, store.table);
      const copied = copySegments(store, backup, loaded.manifest); // checks every file it copies or finds
      // The same MANIFEST bytes under the same number: the backup verifies as the original does.
      backup.installManifest(readFileSync(loaded.path));
      backup.follow(version, { pinned: false, rolledBack: [], resumeFrom: "version", verify: () => {} });
      const segments = loaded.manifest.segments.length;
      c.print(
        { table, version, dir, segments, copied },
        `${table}: v${version} backed up to ${dir} (${copied} segment file${copied === 1 ? "" : "s"} copied` +
          (copied < segments ? `, ${segments - copied} already there)` : ")"),
      );
    });

  program
    .command("restore <table> <dir>")
    .description("publish a version backed up in <dir> (default: its current one) as a new version")
    .option("--version <n>", "the backed-up version to restore")
    .action((table: string, dir: string, o: { version?: string }, cmd: Command) => {
      const c = ctx(cmd);
      const schema = c.schema(table);
      const backup = new TableStore(dir, schema.name);
      const version = parseVersionArg(o.version) ?? backup.currentVersion();
      if (version === null)
        throw new NoVersionError(
          table,
          `has no backup in ${dir} ("strata backup ${table} ${dir}" makes one)`,
        );
      if (!backup.listVersions().includes(version))
        throw new VersionNotFoundError(table, version, `in the backup at ${dir}`);
      requireVerified(backup, version, `Cannot restore from ${dir}`);
      const { manifest } = backup.readManifest(version);
      requireReadable(table, manifest, schema, `servers could not serve it (the backup in ${dir})`);
      const store = c.store(table);
      copySegments(backup, store, manifest);
      // A new version on top, like an import: Kafka offsets from the backup (ingest replays from
      // them), the epoch of a publish outside any lease.
      const restored = store.publish({
        reason: "restore",
        schema_hash: manifest.schema_hash,
        schema: manifest.schema,
        segments: manifest.segments,
        kafka: manifest.kafka,
        writer_epoch: 0,
      });
      const deleted = c.retain(store);
      c.print(
        { table, from: { dir, version }, version: restored.version, deleted_versions: deleted },
        `${table}: restored v${version} of ${dir} as v${restored.version}${retentionNote(deleted)}`,
      );
    });
}
