/**
 * Segment files mapped read-only into memory (storage/native.ts: mmap(2) with MADV_RANDOM, as a
 * SharedArrayBuffer so that V8 does not count the mapping as heap pressure and run a full GC per
 * mapped gigabyte, as it did with @riaskov/mmap-io's external Buffers; docs/decisions.md).
 *
 * Buffer lifetime: the views a mapped segment hands out (`view.bytes` and any subarray of it) are
 * the file's pages, not copies. A mapping has no explicit unmap: it goes when its Buffer is garbage
 * collected, and any subarray keeps the whole mapping alive. So the read path copies what must
 * outlive a request (row-layout.ts `readFeature` copies; the gRPC encoder copies into its output)
 * and never keeps a subarray. Files are never written after publish, so a mapping never sees a
 * shrinking file (SIGBUS); unlinking a mapped file is safe.
 *
 * Mappings are cached by segment uuid and shared by every open version that lists the segment:
 * a new version maps only its new deltas. The cache holds weak references, so a segment no
 * retained snapshot uses is unmapped by the GC.
 */
import { SegmentView } from "../format/segment-view.js";
import { SegmentCorruptError } from "../format/errors.js";
import { errorMessage } from "../shared/errors.js";
import { crc32OffThread, mapSegmentFile } from "./native.js";

export class MappedSegmentCache {
  private readonly views = new Map<string, WeakRef<SegmentView>>();
  private readonly registry = new FinalizationRegistry<string>((uuid) => {
    const ref = this.views.get(uuid);
    if (ref && ref.deref() === undefined) this.views.delete(uuid);
  });

  /**
   * The segment `uuid` at `path`, mapped once. Checks header and trailer; with `verify`, every
   * byte (done before a version is published or swapped in, and cached: verified once per mapping).
   */
  open(uuid: string, path: string, verify: boolean): SegmentView {
    let view = this.views.get(uuid)?.deref();
    if (!view) {
      let bytes: Buffer;
      try {
        bytes = mapSegmentFile(path);
      } catch (err) {
        throw new SegmentCorruptError(`Cannot map segment "${path}": ${errorMessage(err)}`, path, {
          cause: err,
        });
      }
      view = new SegmentView(bytes, path);
      if (view.header.segmentUuid !== uuid) {
        throw new SegmentCorruptError(
          `Segment "${path}" holds uuid ${view.header.segmentUuid}, expected ${uuid}`,
          path,
        );
      }
      this.views.set(uuid, new WeakRef(view));
      this.registry.register(view, uuid);
    }
    if (verify && !verified.has(view)) {
      try {
        view.verifyBody();
      } catch (err) {
        this.evict(uuid);
        throw err;
      }
      verified.add(view);
    }
    return view;
  }

  /**
   * Checks every byte of a segment this cache opened (with `verify` false) off the event loop, once
   * per mapping. Throws SegmentCorruptError and forgets the mapping when it fails.
   */
  async verify(uuid: string, view: SegmentView): Promise<void> {
    if (verified.has(view)) return;
    try {
      view.checkBodyCrc(await crc32OffThread(view.body()));
    } catch (err) {
      this.evict(uuid);
      throw err;
    }
    verified.add(view);
  }

  /** Forgets a mapping (after its file failed a check), so the next open maps and checks afresh. */
  evict(uuid: string): void {
    const view = this.views.get(uuid)?.deref();
    if (view) verified.delete(view);
    this.views.delete(uuid);
  }

  get size(): number {
    return this.views.size;
  }
}

const verified = new WeakSet<SegmentView>();
