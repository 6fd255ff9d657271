/**
 * `strata verify`: whole-file checks of a version's segments against its manifest, and the chain
 * of manifests (each `parent_sha256` equals the SHA-256 of the parent's MANIFEST, as far back as
 * versions are retained). Reports every problem with the file it is in, instead of stopping at one.
 */
import { checkSegmentFile } from "./segment-check.js";
import type { TableStore } from "./table-store.js";
import { StrataError, errorMessage } from "../shared/errors.js";
import { SegmentCorruptError } from "../format/errors.js";

export interface VerifyProblem {
  version: number;
  /** The file at fault: a segment or a MANIFEST. */
  file: string;
  message: string;
}

export interface VerifyReport {
  table: string;
  versions: number[];
  problems: VerifyProblem[];
}

export function verifyVersions(store: TableStore, versions: readonly number[]): VerifyReport {
  const problems: VerifyProblem[] = [];
  const retained = new Set(store.listVersions());
  // Reads every byte from disk, whatever a server has mapped; a segment shared by several
  // versions is read once.
  const checked = new Set<string>();
  for (const version of versions) {
    try {
      const { manifest } = store.readManifest(version);
      for (const entry of manifest.segments) {
        if (checked.has(entry.uuid)) continue;
        checkSegmentFile(store.segmentPath(entry.uuid), entry, manifest.schema_hash);
        checked.add(entry.uuid);
      }
      const { parent, parent_sha256 } = manifest;
      if (parent !== null && retained.has(parent)) {
        const parentManifest = store.readManifest(parent);
        if (parentManifest.sha256 !== parent_sha256) {
          problems.push({
            version,
            file: parentManifest.path,
            message: `Manifest chain is broken: version ${version} records parent SHA-256 ${parent_sha256}, the parent's MANIFEST hashes to ${parentManifest.sha256}`,
          });
        }
      }
    } catch (err) {
      if (!(err instanceof StrataError)) throw err;
      const file =
        (err as { segmentPath?: string; manifestPath?: string }).segmentPath ??
        (err as { manifestPath?: string }).manifestPath ??
        store.manifestPath(version);
      problems.push({ version, file, message: errorMessage(err) });
    }
  }
  return { table: store.table, versions: [...versions], problems };
}

/** Throws the first problem `verifyVersions` finds in `version`, as "<doing> version N: …". */
export function requireVerified(store: TableStore, version: number, doing: string): void {
  const problem = verifyVersions(store, [version]).problems[0];
  if (problem) throw new SegmentCorruptError(`${doing} version ${version}: ${problem.message}`, problem.file);
}
