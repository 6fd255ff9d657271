/** Commands over a table's versions: tables, versions, inspect, verify, rollback, pin, unpin, resume, gc, compact. */
import type { Command } from "commander";
import { describeSchemaChange, mapSchema } from "../../format/schema.js";
import { CliContext, parseVersionArg, retentionNote, type GlobalOptions } from "../context.js";
import { EXIT } from "../exit-codes.js";
import { requireVerified, verifyVersions } from "../../storage/version-verify.js";
import { VersionWriter } from "../../storage/version-writer.js";
import { requireReadable } from "../../storage/version-snapshot.js";
import type { Manifest } from "../../storage/manifest.js";
import { parseTimeout, runFleetVersionCommand } from "./fleet.js";
import { UsageError } from "../../shared/errors.js";

/** `--fleet` of rollback, pin, unpin and resume: apply through the fleet's Redis (fleet.ts). */
interface FleetOptions {
  fleet?: boolean;
  timeout?: string;
}
const FLEET_FLAG = "apply to every node of the fleet through Redis (STRATA_REDIS_URL), and wait for them";
const TIMEOUT_FLAG = "with --fleet: how long to wait for every live node, ms (default 15000)";

type Ctx = (cmd: Command) => CliContext;

export function registerVersionCommands(program: Command, ctx: Ctx): void {
  program
    .command("tables")
    .description("list the configured tables with their current version")
    .action((_o, cmd: Command) => {
      const c = ctx(cmd);
      const rows = c.tables.tables.map((t) => {
        const store = c.store(t.name);
        const state = store.readState();
        const current = store.currentVersion();
        // How the current version's schema differs from the config's (docs/operations.md).
        const mapping = current === null ? null : mapSchema(t, store.readManifest(current).manifest.schema);
        const change = mapping && describeSchemaChange(mapping);
        // compact rewrites added, dropped and reordered features; a retyped one it refuses.
        const remedy = mapping?.retyped.length
          ? `restore the type, or import ${t.name} again`
          : `strata compact ${t.name}`;
        return {
          table: t.name,
          key: t.key,
          features: t.features.length,
          current,
          versions: store.listVersions().length,
          pinned: state.pinned,
          topic: t.topic,
          schema_change: change,
          remedy: change === null ? null : remedy,
        };
      });
      c.print(
        rows,
        rows.map(
          (r) =>
            `${r.table}\tcurrent=${r.current ?? "-"}\tversions=${r.versions}${r.pinned ? "\tpinned" : ""}\tfeatures=${r.features}` +
            (r.schema_change ? `\tschema differs from the config (${r.schema_change}): ${r.remedy}` : ""),
        ),
      );
    });

  program
    .command("versions <table>")
    .description("list retained versions, newest first, with current, pin and rolled-back marks")
    .action((table: string, _o, cmd: Command) => {
      const c = ctx(cmd);
      const store = c.store(table);
      const schema = c.schema(table);
      const current = store.currentVersion();
      const state = store.readState();
      const rows = store
        .listVersions()
        .reverse()
        .map((v) => {
          const m = store.readManifest(v).manifest;
          return {
            version: v,
            current: v === current,
            pinned: state.pinned && state.pinned_version === v,
            rolled_back: state.rolled_back.includes(v),
            reason: m.reason,
            parent: m.parent,
            created_at: new Date(m.created_at_ms).toISOString(),
            segments: m.segments.length,
            records: m.segments.reduce((n, s) => n + s.records, 0),
            // How the config's features differ from this version's (docs/operations.md).
            schema_change: describeSchemaChange(mapSchema(schema, m.schema)),
          };
        });
      c.print(
        { table, current, pinned: state.pinned, pinned_version: state.pinned_version, versions: rows },
        rows.length === 0
          ? [`${table}: nothing published yet (import a file or start ingest)`]
          : rows.map(
              (r) =>
                `${r.current ? "*" : " "} v${r.version}\t${r.reason}\t${r.created_at}\tsegments=${r.segments}\trecords=${r.records}` +
                `${r.pinned ? "\tPINNED" : ""}${r.rolled_back ? "\tROLLED-BACK" : ""}` +
                (r.schema_change ? `\tschema: config ${r.schema_change}` : ""),
            ),
      );
    });

  program
    .command("inspect <table>")
    .description("show a version's manifest (default: current)")
    .option("--version <n>", "a retained version")
    .action((table: string, o: { version?: string }, cmd: Command) => {
      const c = ctx(cmd);
      const store = c.store(table);
      const version = parseVersionArg(o.version) ?? store.requireCurrentVersion();
      const { manifest, sha256, path } = store.readManifest(version);
      c.print(
        { ...manifest, manifest_sha256: sha256, manifest_path: path },
        describeManifest(manifest, sha256),
      );
    });

  program
    .command("verify <table>")
    .description(
      "check every byte of a version's segments and its manifest chain; exit 5 naming the bad file",
    )
    .option("--version <n>", "a retained version (default: current)")
    .option("--all", "every retained version")
    .action((table: string, o: { version?: string; all?: boolean }, cmd: Command) => {
      const c = ctx(cmd);
      const store = c.store(table);
      if (o.all && o.version !== undefined) throw new UsageError("Give --version or --all, not both");
      const asked = parseVersionArg(o.version);
      if (asked !== undefined) store.requireRetained(asked);
      const versions = o.all ? store.listVersions() : [asked ?? store.requireCurrentVersion()];
      const report = verifyVersions(store, versions);
      const ok = report.problems.length === 0;
      c.print(
        { ...report, ok },
        ok
          ? `ok: ${table} ${versions.map((v) => `v${v}`).join(" ")} verified`
          : report.problems.map((p) => `FAIL v${p.version}: ${p.message}`),
      );
      if (!ok) process.exitCode = EXIT.CORRUPT;
    });

  program
    .command("rollback <table>")
    .description("make an earlier retained version current (default: the previous one) and pin the table")
    .option("--to <version>", "the version to roll back to")
    .option("--force", "allow a version that was rolled back before")
    .option("--fleet", FLEET_FLAG)
    .option("--timeout <ms>", TIMEOUT_FLAG)
    .action(async (table: string, o: { to?: string; force?: boolean } & FleetOptions, cmd: Command) => {
      const c = ctx(cmd);
      const to = parseVersionArg(o.to);
      if (o.fleet) {
        const action = {
          kind: "rollback" as const,
          ...(to === undefined ? {} : { to }),
          force: o.force === true,
        };
        return runFleetVersionCommand(c, table, action, parseTimeout(o.timeout));
      }
      const store = c.store(table);
      const schema = c.schema(table);
      if (to !== undefined && to === store.currentVersion())
        throw new UsageError(`v${to} is already current: "strata pin ${table}" keeps it`);
      const result = store.rollback({
        ...(to === undefined ? {} : { to }),
        force: o.force === true,
        verify: (v) => {
          requireVerified(store, v, "Cannot roll back to");
          // Servers with this config would refuse it: keep what they serve.
          requireReadable(
            table,
            store.readManifest(v).manifest,
            schema,
            "servers would refuse it, so it is not made current",
          );
        },
      });
      const change = describeSchemaChange(mapSchema(schema, store.readManifest(result.to).manifest.schema));
      c.print(
        { table, ...result, pinned: true, schema_change: change },
        `${table}: rolled back v${result.from} -> v${result.to} (pinned; "strata resume ${table}" lets ingest publish again)` +
          (change === null
            ? ""
            : `\nv${result.to} was written with another schema than the config's (${change}): servers answer what it lacks as null, and ingest waits for "strata compact ${table}"`),
      );
    });

  program
    .command("pin <table>")
    .description("keep the current version: ingest publishes nothing until resume")
    .option("--fleet", FLEET_FLAG)
    .option("--timeout <ms>", TIMEOUT_FLAG)
    .action(async (table: string, o: FleetOptions, cmd: Command) => {
      const c = ctx(cmd);
      if (o.fleet) return runFleetVersionCommand(c, table, { kind: "pin" }, parseTimeout(o.timeout));
      const version = c.store(table).pin();
      c.print({ table, pinned: true, version }, `${table}: pinned at v${version}`);
    });

  for (const name of ["resume", "unpin"]) {
    program
      .command(`${name} <table>`)
      .description(
        name === "resume"
          ? "let ingest publish again, replaying Kafka from the pinned version's offsets (or --from latest)"
          : "same as resume: clear the pin",
      )
      .option("--from <where>", "version (replay from the current version's offsets) or latest", "version")
      .option("--fleet", FLEET_FLAG)
      .option("--timeout <ms>", TIMEOUT_FLAG)
      .action(async (table: string, o: { from: string } & FleetOptions, cmd: Command) => {
        const c = ctx(cmd);
        if (o.from !== "version" && o.from !== "latest")
          throw new UsageError(`--from must be "version" or "latest" (got "${o.from}")`);
        if (o.fleet) {
          return runFleetVersionCommand(c, table, { kind: "resume", from: o.from }, parseTimeout(o.timeout));
        }
        c.store(table).resume(o.from);
        c.print({ table, pinned: false, resume_from: o.from }, `${table}: resumed (from ${o.from})`);
      });
  }

  program
    .command("gc <table>")
    .description(
      "delete versions beyond the newest N (never current or pinned) and unreferenced segment files",
    )
    .requiredOption("--keep <n>", "versions to keep")
    .action((table: string, o: { keep: string }, cmd: Command) => {
      const c = ctx(cmd);
      const keep = Number(o.keep);
      if (!Number.isSafeInteger(keep) || keep < 1)
        throw new UsageError(`--keep must be a positive integer (got "${o.keep}")`);
      const result = c.store(table).gc(keep);
      c.print(
        { table, deleted_versions: result.versions, deleted_segments: result.segments },
        `${table}: deleted ${result.versions.length} version(s), ${result.segments.length} segment file(s)`,
      );
    });

  program
    .command("compact <table>")
    .description("merge the current version's base and deltas into a new base, in the config's schema")
    .option(
      "--drop-expired",
      "leave out rows whose newest write is older than the table's max_age_ms (served as OUTSIDE_MAX_AGE until then)",
    )
    .action((table: string, o: { dropExpired?: boolean }, cmd: Command) => {
      const c = ctx(cmd);
      const store = c.store(table);
      const schema = c.schema(table);
      if (o.dropExpired && schema.maxAgeMs === 0)
        throw new UsageError(`Table "${table}" has no max_age_ms: none of its rows expire`);
      const current = store.readManifest(store.requireCurrentVersion()).manifest;
      const change = describeSchemaChange(mapSchema(schema, current.schema));
      if (!o.dropExpired && !current.segments.some((s) => s.kind === "delta") && change === null) {
        // A new version with the same rows would only take disk and a swap.
        c.print(
          { ...current, compacted: false },
          `${table}: v${current.version} has no deltas: nothing to compact`,
        );
        return;
      }
      // Rows past max_age_ms now: the age servers apply at the moment they answer.
      const expireBeforeMs = o.dropExpired ? Date.now() - schema.maxAgeMs : undefined;
      const m = new VersionWriter(store, schema).compact(
        expireBeforeMs === undefined ? {} : { expireBeforeMs },
      );
      const records = m.segments.reduce((n, s) => n + s.records, 0);
      const deleted = c.retain(store);
      c.print(
        {
          ...m,
          compacted: true,
          schema_change: change,
          deleted_versions: deleted,
        },
        `${table}: compacted into v${m.version} (${records} records${o.dropExpired ? `, ${m.expired} expired rows left out` : ""})` +
          (change === null ? "" : `, in the config's schema (${change})`) +
          retentionNote(deleted),
      );
    });
}

function describeManifest(m: Manifest, sha: string): string[] {
  return [
    `table:    ${m.table}`,
    `version:  v${m.version} (${m.reason}, ${new Date(m.created_at_ms).toISOString()})`,
    `parent:   ${m.parent === null ? "-" : `v${m.parent} sha256:${m.parent_sha256}`}`,
    `manifest: sha256:${sha}`,
    `schema:   ${m.schema_hash} key=${m.schema.key} ${m.schema.features.map((f) => `${f.name}:${f.type}`).join(" ")}`,
    `kafka:    ${m.kafka ? `${m.kafka.topic} ${JSON.stringify(m.kafka.offsets)}` : "-"}`,
    "segments:",
    ...m.segments.map(
      (s) =>
        `  ${s.kind.padEnd(5)} ${s.uuid} ${s.size} B records=${s.records} tombstones=${s.tombstones} body_crc32=${s.body_crc32}`,
    ),
  ];
}

export type { GlobalOptions };
