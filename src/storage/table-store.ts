/**
 * One table's directory (DESIGN §2) and the operations on its versions:
 *
 *   <data-dir>/<table>/
 *     data/<segment-uuid>.seg       immutable segment files, shared by versions
 *     versions/v00000042/MANIFEST   one manifest per version: the commit point
 *     current -> versions/v00000042 symlink, replaced by rename(2), never unlink + create
 *     state.json                    pin and rolled-back marks (tmp + fsync + rename)
 *     publish.lock                  held for the instant of a publish or a swap of `current`
 *
 * A crash at any step leaves the old version or the new one current, never a mixture: segment
 * files and manifests become visible by rename only once complete, and `current` moves last.
 * Temp leftovers are swept by `cleanLeftovers` at start.
 */
import {
  existsSync,
  linkSync,
  mkdirSync,
  readFileSync,
  readdirSync,
  readlinkSync,
  renameSync,
  rmSync,
  symlinkSync,
  unlinkSync,
  writeFileSync,
} from "node:fs";
import { join } from "node:path";
import {
  fsyncDir,
  isAbandonedTemp,
  makeDirs,
  processAlive,
  tempPathFor,
  writeFileDurably,
} from "./durable-fs.js";
import { decodeManifest, encodeManifest, sha256, type Manifest } from "./manifest.js";
import {
  ManifestCorruptError,
  NoPreviousVersionError,
  NoVersionError,
  TableLockedError,
  TablePinnedError,
  VersionNotFoundError,
  VersionRolledBackError,
  WriterFencedError,
} from "./errors.js";
import { InvariantViolationError, errorMessage } from "../shared/errors.js";
import { SegmentCorruptError } from "../format/errors.js";

export interface TableState {
  /** When pinned, ingest publishes nothing and `current` stays at `pinned_version`. */
  pinned: boolean;
  pinned_version: number | null;
  /** Versions a rollback stepped back over: never made current again unless forced. */
  rolled_back: number[];
  /** Where ingest resumes after `resume --from latest`: the newest Kafka offsets, not the pinned ones. */
  resume_from: "version" | "latest";
  /**
   * The highest `writer_epoch` of any manifest this table has published or installed (fleet
   * fencing, docs/fleet.md). Kept here because retention deletes old manifests.
   */
  max_writer_epoch: number;
  updated_at_ms: number;
}

export interface LoadedManifest {
  manifest: Manifest;
  /** SHA-256 of the MANIFEST bytes: what a child records as `parent_sha256`. */
  sha256: string;
  path: string;
}

const VERSION_DIR = /^v(\d{8})$/;
const LOCK_WAIT_MS = 10_000;

export const versionDirName = (v: number): string => `v${String(v).padStart(8, "0")}`;

export class TableStore {
  readonly dir: string;
  readonly dataDir: string;
  readonly versionsDir: string;
  readonly currentLink: string;
  readonly statePath: string;

  constructor(
    dataRoot: string,
    readonly table: string,
  ) {
    this.dir = join(dataRoot, table);
    this.dataDir = join(this.dir, "data");
    this.versionsDir = join(this.dir, "versions");
    this.currentLink = join(this.dir, "current");
    this.statePath = join(this.dir, "state.json");
  }

  exists(): boolean {
    return existsSync(this.versionsDir);
  }

  /** Creates the directories (idempotent). */
  ensureLayout(): void {
    makeDirs(this.dataDir);
    makeDirs(this.versionsDir);
  }

  segmentPath(uuid: string): string {
    return join(this.dataDir, `${uuid}.seg`);
  }

  manifestPath(version: number): string {
    return join(this.versionsDir, versionDirName(version), "MANIFEST");
  }

  /** Retained versions (those with a MANIFEST), ascending. */
  listVersions(): number[] {
    let names: string[];
    try {
      names = readdirSync(this.versionsDir);
    } catch {
      return [];
    }
    const versions: number[] = [];
    for (const name of names) {
      const m = VERSION_DIR.exec(name);
      if (m && existsSync(join(this.versionsDir, name, "MANIFEST"))) versions.push(Number(m[1]));
    }
    return versions.sort((a, b) => a - b);
  }

  /** Throws VersionNotFoundError unless `version` is retained. */
  /** Whether `version` is retained: its MANIFEST is there (gc removes it first). One stat. */
  isRetained(version: number): boolean {
    return existsSync(join(this.versionsDir, versionDirName(version), "MANIFEST"));
  }

  requireRetained(version: number): void {
    if (!this.listVersions().includes(version)) throw new VersionNotFoundError(this.table, version);
  }

  /** The version `current` points at, or null before the first publish. */
  currentVersion(): number | null {
    let target: string;
    try {
      target = readlinkSync(this.currentLink);
    } catch {
      return null;
    }
    const m = /^versions\/v(\d{8})$/.exec(target);
    if (!m) throw new InvariantViolationError(`"${this.currentLink}" points outside versions/: "${target}"`);
    return Number(m[1]);
  }

  requireCurrentVersion(): number {
    const v = this.currentVersion();
    if (v === null) throw new NoVersionError(this.table);
    return v;
  }

  readManifest(version: number): LoadedManifest {
    const path = this.manifestPath(version);
    let bytes: Buffer;
    try {
      bytes = readFileSync(path);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === "ENOENT")
        throw new VersionNotFoundError(this.table, version);
      throw new ManifestCorruptError(`Cannot read manifest "${path}": ${errorMessage(err)}`, path, {
        cause: err,
      });
    }
    const manifest = decodeManifest(bytes, path);
    if (manifest.version !== version || manifest.table !== this.table) {
      throw new ManifestCorruptError(
        `Manifest is corrupt: it names ${manifest.table} v${manifest.version}: "${path}"`,
        path,
      );
    }
    return { manifest, sha256: sha256(bytes), path };
  }

  /**
   * The table's pin, rolled-back marks and fencing epoch (state.json; defaults when there is none).
   * A file that does not parse is refused, naming it, never read as "nothing pinned": it may
   * hold a pin, and a rollback's marks.
   */
  readState(): TableState {
    let s: Partial<TableState>;
    try {
      s = JSON.parse(readFileSync(this.statePath, "utf8")) as Partial<TableState>;
      if (typeof s !== "object" || s === null || Array.isArray(s)) throw new Error("not a JSON object");
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === "ENOENT") return this.emptyState();
      if ((err as NodeJS.ErrnoException).code !== undefined) throw err; // unreadable: the system's refusal
      throw new ManifestCorruptError(
        `Table state "${this.statePath}" is corrupt (${errorMessage(err)}): it holds the table's pin and rolled-back marks; restore it, or remove it to clear them`,
        this.statePath,
        { cause: err },
      );
    }
    return {
      pinned: s.pinned === true,
      pinned_version: typeof s.pinned_version === "number" ? s.pinned_version : null,
      rolled_back: Array.isArray(s.rolled_back) ? s.rolled_back.filter((v) => typeof v === "number") : [],
      resume_from: s.resume_from === "latest" ? "latest" : "version",
      max_writer_epoch: typeof s.max_writer_epoch === "number" ? s.max_writer_epoch : 0,
      updated_at_ms: typeof s.updated_at_ms === "number" ? s.updated_at_ms : 0,
    };
  }

  /** The state of a table that has none: nothing pinned or rolled back. */
  emptyState(): TableState {
    return {
      pinned: false,
      pinned_version: null,
      rolled_back: [],
      resume_from: "version",
      max_writer_epoch: 0,
      updated_at_ms: 0,
    };
  }

  /** Refuses up front what `publish` refuses at the end: a publish on a pinned table. */
  refuseIfPinned(state = this.readState()): void {
    if (state.pinned) throw new TablePinnedError(this.table, state.pinned_version);
  }

  private writeState(state: TableState): void {
    writeFileDurably(this.statePath, JSON.stringify({ ...state, updated_at_ms: Date.now() }, null, 2) + "\n");
  }

  /**
   * Publishes a new version whose segments are already durable in data/: writes its MANIFEST,
   * then moves `current` to it. The version number is one past the highest retained. Refused
   * while the table is pinned, and when `expectParent` is given and `current` moved meanwhile.
   */
  publish(
    draft: Omit<Manifest, "version" | "parent" | "parent_sha256" | "format" | "table" | "created_at_ms">,
    options: { expectParent?: number | null } = {},
  ): Manifest {
    return this.withPublishLock(() => {
      const state = this.readState();
      this.refuseIfPinned(state);
      const parent = this.currentVersion();
      if (options.expectParent !== undefined && options.expectParent !== parent) {
        throw new InvariantViolationError(
          `Cannot publish on table "${this.table}": built on version ${options.expectParent}, but ${parent} is current`,
        );
      }
      const parentManifest = parent === null ? null : this.readManifest(parent);
      this.checkFence(draft.writer_epoch, state, parentManifest?.manifest.writer_epoch ?? 0);
      // A segment written for this version is not listed by any manifest until this one is
      // written, so a gc by another process (retention after its own publish) may have removed
      // it meanwhile. gc holds this lock too: checked here, a file stays until it is listed.
      for (const s of draft.segments) {
        const path = this.segmentPath(s.uuid);
        if (!existsSync(path))
          throw new SegmentCorruptError(
            `Cannot publish on table "${this.table}": segment "${path}" is gone (removed by a gc of another process before this version listed it); nothing was published, run it again`,
            path,
          );
      }
      const version = Math.max(0, ...this.listVersions(), ...state.rolled_back) + 1;
      const manifest: Manifest = {
        format: 1,
        table: this.table,
        version,
        parent,
        parent_sha256: parentManifest?.sha256 ?? null,
        created_at_ms: Date.now(),
        ...draft,
      };
      this.writeManifest(manifest);
      this.raiseFence(manifest.writer_epoch, state);
      this.swapCurrent(version);
      return manifest;
    });
  }

  /**
   * Fencing (docs/fleet.md): every fleet writer stamps its manifests with its lease epoch, which
   * only grows from one lease holder to the next. A manifest whose epoch is below the highest this
   * table has seen comes from a writer that lost its lease while it worked (paused, partitioned):
   * refused here, at the last step before it could become current, whatever the writer believed.
   * Epoch 0 is not fenced: it marks a publish outside any lease (an import or compaction from the
   * CLI on one host), serialised by the publish lock like every other.
   */
  private checkFence(epoch: number, state: TableState, currentEpoch: number): void {
    const highest = Math.max(state.max_writer_epoch, currentEpoch);
    if (epoch > 0 && epoch < highest) throw new WriterFencedError(this.table, epoch, highest);
  }

  /** Records a new highest epoch durably (only when it grows: one state write per lease change). */
  private raiseFence(epoch: number, state: TableState): void {
    if (epoch > state.max_writer_epoch) this.writeState({ ...state, max_writer_epoch: epoch });
  }

  /**
   * Records a writer epoch seen in the fleet (a lease this node took, or one another node took),
   * so no publish here goes out under a lower one, and a new lease is never granted at or below
   * it even if the control plane lost its counter.
   */
  noteWriterEpoch(epoch: number): void {
    if (epoch <= this.readState().max_writer_epoch) return;
    this.withPublishLock(() => this.raiseFence(epoch, this.readState()));
  }

  /**
   * Installs a version received from the fleet's writer (docs/fleet.md): its MANIFEST bytes as
   * the writer wrote them, under the writer's version number, so version ids and manifest hashes
   * are the same on every node. Every segment it lists must already be durable in data/ and
   * checked by the caller (the publish order of docs/segment-format.md: segments, then the
   * manifest). Does not move `current` (see `follow`). A version already installed with the same
   * bytes is a no-op; with other bytes it is refused (see `discardVersion`). The fence is raised
   * to the manifest's epoch but not checked: an older version from an earlier lease (a rollback
   * target) is legitimate, and what followers install was announced through the fenced registry.
   */
  installManifest(bytes: Buffer): LoadedManifest {
    const manifest = decodeManifest(bytes, `<manifest of ${this.table} from the fleet>`);
    if (manifest.table !== this.table) {
      throw new InvariantViolationError(
        `Cannot install a manifest of table "${manifest.table}" into table "${this.table}"`,
      );
    }
    const digest = sha256(bytes);
    return this.withPublishLock(() => {
      const path = this.manifestPath(manifest.version);
      if (existsSync(path)) {
        const existing = this.readManifest(manifest.version);
        if (existing.sha256 === digest) return existing;
        throw new InvariantViolationError(
          `Cannot install version ${manifest.version} of table "${this.table}": another manifest with that number is installed (sha256 ${existing.sha256}, received ${digest})`,
        );
      }
      for (const s of manifest.segments) {
        if (!existsSync(this.segmentPath(s.uuid))) {
          throw new InvariantViolationError(
            `Cannot install version ${manifest.version} of table "${this.table}": segment "${this.segmentPath(s.uuid)}" is missing`,
          );
        }
      }
      const state = this.readState();
      const finalDir = join(this.versionsDir, versionDirName(manifest.version));
      const tmpDir = tempPathFor(finalDir);
      mkdirSync(tmpDir);
      writeFileDurably(join(tmpDir, "MANIFEST"), bytes);
      renameSync(tmpDir, finalDir);
      fsyncDir(this.versionsDir);
      this.raiseFence(manifest.writer_epoch, state);
      return { manifest, sha256: digest, path };
    });
  }

  /**
   * Fleet followers (docs/fleet.md): makes the retained `version` current and sets the pin the
   * fleet's desired state names, in one step under the publish lock. `rolledBack` is merged into
   * the local rolled-back marks (so no later publish here reuses those numbers), minus `version`
   * itself. `verify` runs before `current` moves to another version. Leaving a pin sets
   * `resume_from` as asked, for the ingestor.
   */
  follow(
    version: number,
    options: {
      pinned: boolean;
      rolledBack: readonly number[];
      resumeFrom: "version" | "latest";
      verify: (version: number) => void;
    },
  ): { from: number | null; to: number; changed: boolean } {
    return this.withPublishLock(() => {
      this.requireRetained(version);
      const current = this.currentVersion();
      const state = this.readState();
      const rolledBack = [...new Set([...state.rolled_back, ...options.rolledBack])]
        .filter((v) => v !== version)
        .sort((a, b) => a - b);
      const next: TableState = {
        ...state,
        pinned: options.pinned,
        pinned_version: options.pinned ? version : null,
        rolled_back: rolledBack,
        resume_from: state.pinned && !options.pinned ? options.resumeFrom : state.resume_from,
      };
      const stateChanged =
        next.pinned !== state.pinned ||
        next.pinned_version !== state.pinned_version ||
        next.resume_from !== state.resume_from ||
        next.rolled_back.join(",") !== state.rolled_back.join(",");
      if (current !== version) options.verify(version);
      if (stateChanged) this.writeState(next);
      if (current !== version) this.swapCurrent(version);
      return { from: current, to: version, changed: stateChanged || current !== version };
    });
  }

  /**
   * Marks version numbers rolled back without moving `current`: for a fleet writer, numbers the
   * fleet has used for versions this data dir does not hold, so no publish here reuses them
   * (a publish is numbered above every retained and rolled-back version).
   */
  markRolledBack(versions: readonly number[]): void {
    const state = this.readState();
    if (versions.every((v) => state.rolled_back.includes(v))) return;
    this.withPublishLock(() => {
      const s = this.readState();
      this.writeState({
        ...s,
        rolled_back: [...new Set([...s.rolled_back, ...versions])].sort((a, b) => a - b),
      });
    });
  }

  /**
   * Deletes one retained version that is not current (its MANIFEST first, then its directory),
   * leaving segment files to gc. For a fleet follower that holds a version its writer never
   * announced (a deposed writer's last publish), before it installs the fleet's version of that
   * number.
   */
  discardVersion(version: number): void {
    this.withPublishLock(() => {
      if (this.currentVersion() === version) {
        throw new InvariantViolationError(
          `Cannot discard version ${version} of table "${this.table}": it is current`,
        );
      }
      const dir = join(this.versionsDir, versionDirName(version));
      if (!existsSync(dir)) return;
      rmSync(join(dir, "MANIFEST"), { force: true });
      fsyncDir(dir);
      rmSync(dir, { recursive: true, force: true });
      fsyncDir(this.versionsDir);
    });
  }

  /**
   * Rolls back to `to` (default: the newest retained version below current that was not rolled
   * back). The target is verified by `verify` first. Marks the versions above it rolled back and
   * pins the table, so ingest does not move it forward until `resume`.
   */
  rollback(options: { to?: number; force?: boolean; verify: (version: number) => void }): {
    from: number;
    to: number;
  } {
    return this.withPublishedLock((current) => {
      const state = this.readState();
      const retained = this.listVersions();
      let to = options.to;
      if (to === undefined) {
        to = [...retained].reverse().find((v) => v < current && !state.rolled_back.includes(v));
        if (to === undefined) throw new NoPreviousVersionError(this.table, current);
      }
      if (!retained.includes(to)) throw new VersionNotFoundError(this.table, to);
      if (state.rolled_back.includes(to) && !options.force) throw new VersionRolledBackError(this.table, to);
      options.verify(to);
      const target = to;
      const rolledBack = new Set(state.rolled_back.filter((v) => v !== target));
      for (const v of retained) if (v > target) rolledBack.add(v);
      this.writeState({
        ...state,
        pinned: true,
        pinned_version: target,
        rolled_back: [...rolledBack].sort((a, b) => a - b),
        resume_from: "version",
      });
      this.swapCurrent(target);
      return { from: current, to: target };
    });
  }

  /** Pins the table at its current version: ingest publishes nothing until `resume`. */
  pin(): number {
    return this.withPublishedLock((current) => {
      this.writeState({ ...this.readState(), pinned: true, pinned_version: current });
      return current;
    });
  }

  /** Lets ingest publish again, from the pinned version's Kafka offsets or from the latest ones. */
  resume(from: "version" | "latest" = "version"): void {
    // Nothing published: there is no pin, nor anything to resume from.
    this.withPublishedLock(() => {
      this.writeState({ ...this.readState(), pinned: false, pinned_version: null, resume_from: from });
    });
  }

  /** Clears a `resume_from: latest` request once ingest has acted on it. */
  clearResumeFrom(): void {
    this.withPublishLock(() => this.writeState({ ...this.readState(), resume_from: "version" }));
  }

  /**
   * Keeps the newest `keep` versions, the current one and the pinned one; deletes the others'
   * manifests, then every segment file no retained manifest lists. Returns what was deleted.
   */
  gc(keep: number): { versions: number[]; segments: string[] } {
    if (!Number.isInteger(keep) || keep < 1)
      throw new RangeError(`--keep must be a positive integer (got ${keep})`);
    if (!existsSync(this.dir)) return { versions: [], segments: [] }; // no table here to lay out
    return this.withPublishLock(() => {
      const retained = this.listVersions();
      const state = this.readState();
      const current = this.currentVersion();
      const keepSet = new Set(retained.slice(-keep));
      if (current !== null) keepSet.add(current);
      if (state.pinned_version !== null) keepSet.add(state.pinned_version);
      const doomed = retained.filter((v) => !keepSet.has(v));
      for (const v of doomed) {
        // The MANIFEST goes first: a version dir without one is not a version, whatever a crash leaves.
        const dir = join(this.versionsDir, versionDirName(v));
        unlinkSync(join(dir, "MANIFEST"));
        fsyncDir(dir);
        rmSync(dir, { recursive: true, force: true });
      }
      fsyncDir(this.versionsDir);
      const referenced = new Set<string>();
      for (const v of keepSet) for (const s of this.readManifest(v).manifest.segments) referenced.add(s.uuid);
      const segments: string[] = [];
      for (const name of readdirSync(this.dataDir)) {
        const m = /^([0-9a-f]{32})\.seg$/.exec(name);
        if (m && !referenced.has(m[1]!)) {
          unlinkSync(join(this.dataDir, name)); // safe while mapped: the pages live until unmapped
          segments.push(m[1]!);
        }
      }
      fsyncDir(this.dataDir);
      return { versions: doomed, segments };
    });
  }

  /**
   * Removes what a crash left: temp files of dead processes, version dirs without a MANIFEST, a
   * stale publish lock. (`current.tmp` is replaced under the publish lock, so it needs no sweep.)
   */
  cleanLeftovers(): string[] {
    const removed: string[] = [];
    const sweep = (dir: string, doomed: (name: string) => boolean): void => {
      let names: string[] = [];
      try {
        names = readdirSync(dir);
      } catch {
        return;
      }
      for (const name of names) {
        if (!doomed(name)) continue;
        rmSync(join(dir, name), { recursive: true, force: true });
        removed.push(join(dir, name));
      }
    };
    sweep(this.dir, isAbandonedTemp);
    sweep(this.dataDir, isAbandonedTemp);
    sweep(
      this.versionsDir,
      (n) =>
        isAbandonedTemp(n) || (VERSION_DIR.test(n) && !existsSync(join(this.versionsDir, n, "MANIFEST"))),
    );
    const lock = join(this.dir, "publish.lock");
    if (existsSync(lock) && !lockHolderAlive(lock)) {
      unlinkSync(lock);
      removed.push(lock);
    }
    return removed;
  }

  /** The manifest goes into a temp dir, then the dir is renamed to its version name. */
  private writeManifest(manifest: Manifest): void {
    const finalDir = join(this.versionsDir, versionDirName(manifest.version));
    const tmpDir = tempPathFor(finalDir);
    mkdirSync(tmpDir);
    writeFileDurably(join(tmpDir, "MANIFEST"), encodeManifest(manifest));
    renameSync(tmpDir, finalDir);
    fsyncDir(this.versionsDir);
  }

  /** Points `current` at a version: a new symlink under a temp name, renamed over the old one. */
  private swapCurrent(version: number): void {
    const tmp = join(this.dir, "current.tmp");
    rmSync(tmp, { force: true });
    symlinkSync(`versions/${versionDirName(version)}`, tmp);
    renameSync(tmp, this.currentLink);
    fsyncDir(this.dir);
  }

  /**
   * Serialises publishes, rollbacks, pins and gc of one table across processes: an O_EXCL lock
   * file holding the holder's pid, taken over when that process is gone.
   */
  /**
   * The publish lock for a change to a table that has a current version (`fn` gets it); refused
   * with NoVersionError before the lock, which would lay out a table that has nothing.
   */
  private withPublishedLock<T>(fn: (current: number) => T): T {
    this.requireCurrentVersion();
    return this.withPublishLock(() => fn(this.requireCurrentVersion()));
  }

  withPublishLock<T>(fn: () => T): T {
    this.ensureLayout();
    const lock = join(this.dir, "publish.lock");
    const deadline = Date.now() + LOCK_WAIT_MS;
    for (;;) {
      // link(2) of a complete file: the lock never exists without its holder's pid in it.
      const tmp = tempPathFor(lock);
      writeFileSync(tmp, String(process.pid));
      try {
        linkSync(tmp, lock);
        break;
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code !== "EEXIST") throw err;
        if (!lockHolderAlive(lock)) {
          rmSync(lock, { force: true });
          continue;
        }
        if (Date.now() > deadline) {
          throw new TableLockedError(
            `Cannot lock table "${this.table}": "${lock}" is held by another process`,
            lock,
          );
        }
        Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 5);
      } finally {
        rmSync(tmp, { force: true });
      }
    }
    try {
      return fn();
    } finally {
      rmSync(lock, { force: true });
    }
  }
}

function lockHolderAlive(lock: string): boolean {
  let pid: number;
  try {
    pid = Number(readFileSync(lock, "utf8"));
  } catch {
    return false; // gone already
  }
  return Number.isInteger(pid) && pid > 0 && processAlive(pid);
}
