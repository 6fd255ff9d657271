/**
 * Copies a version's segment files from one table store to another (a backup, or back from one),
 * each checked against its manifest entry before it is named (a damaged source is reported by its
 * own path). Segment files are immutable and
 * named by uuid, so a file the destination already holds is not copied again: backups into one
 * directory share what their versions share (a base and its deltas).
 */
import {
  constants,
  copyFileSync,
  existsSync,
  fsyncSync,
  openSync,
  closeSync,
  renameSync,
  rmSync,
} from "node:fs";
import type { TableStore } from "./table-store.js";
import type { Manifest } from "./manifest.js";
import { fsyncDir, tempPathFor } from "./durable-fs.js";
import { checkSegmentFile } from "./segment-check.js";
import { SegmentCorruptError } from "../format/errors.js";

/** Copies the segments `manifest` lists from `from` into `to` (durably); returns how many were new. */
export function copySegments(from: TableStore, to: TableStore, manifest: Manifest): number {
  to.ensureLayout();
  let copied = 0;
  for (const entry of manifest.segments) {
    const target = to.segmentPath(entry.uuid);
    if (existsSync(target)) {
      checkSegmentFile(target, entry, manifest.schema_hash);
      continue;
    }
    const tmp = tempPathFor(target);
    try {
      // A reflink where the filesystem has them (XFS, Btrfs), else a copy.
      copyFileSync(from.segmentPath(entry.uuid), tmp, constants.COPYFILE_FICLONE);
      const fd = openSync(tmp, "r");
      try {
        fsyncSync(fd);
      } finally {
        closeSync(fd);
      }
      try {
        checkSegmentFile(tmp, entry, manifest.schema_hash);
      } catch (err) {
        // The copy is checked, not the source beforehand: one read of each file, not two.
        if (!(err instanceof SegmentCorruptError)) throw err;
        const source = from.segmentPath(entry.uuid);
        throw new SegmentCorruptError(err.message.replace(tmp, source), source);
      }
      renameSync(tmp, target);
    } catch (err) {
      rmSync(tmp, { force: true });
      throw err;
    }
    copied++;
  }
  fsyncDir(to.dataDir);
  return copied;
}
