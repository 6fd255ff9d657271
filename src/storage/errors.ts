import { StrataError } from "../shared/errors.js";

export class TableNotFoundError extends StrataError {
  readonly code = "STRATA_TABLE_NOT_FOUND";
  /** @param where where it was looked for */
  constructor(
    readonly table: string,
    where = "defined in the table config",
  ) {
    super(`Table "${table}" is not ${where}`);
  }
}

export class VersionNotFoundError extends StrataError {
  readonly code = "STRATA_VERSION_NOT_FOUND";
  /** @param where where it was looked for */
  constructor(
    readonly table: string,
    readonly version: number,
    where = "retained",
  ) {
    super(`Version ${version} of table "${table}" is not ${where}`);
  }
}

export class NoVersionError extends StrataError {
  readonly code = "STRATA_NO_VERSION";
  /** @param why why there is none to serve, when versions exist but none verified */
  constructor(
    readonly table: string,
    why = "has no published version yet: import a file or start ingest",
  ) {
    super(`Table "${table}" ${why}`);
  }
}

export class NoPreviousVersionError extends StrataError {
  readonly code = "STRATA_NO_PREVIOUS_VERSION";
  constructor(
    readonly table: string,
    readonly current: number,
  ) {
    super(`Cannot roll back table "${table}": no retained version before ${current} that is not rolled back`);
  }
}

export class ManifestCorruptError extends StrataError {
  readonly code = "STRATA_MANIFEST_CORRUPT";
  constructor(
    message: string,
    readonly manifestPath: string,
    options?: ErrorOptions,
  ) {
    super(message, options);
  }
}

export class TableLockedError extends StrataError {
  readonly code = "STRATA_TABLE_LOCKED";
  constructor(
    message: string,
    readonly lockPath: string,
  ) {
    super(message, { retriable: true });
  }
}

export class TablePinnedError extends StrataError {
  readonly code = "STRATA_TABLE_PINNED";
  constructor(
    readonly table: string,
    readonly pinnedVersion: number | null,
  ) {
    super(
      `Table "${table}" is pinned at version ${pinnedVersion}: run "strata resume ${table}" to publish again`,
    );
  }
}

export class VersionRolledBackError extends StrataError {
  readonly code = "STRATA_VERSION_ROLLED_BACK";
  constructor(
    readonly table: string,
    readonly version: number,
  ) {
    super(`Version ${version} of table "${table}" was rolled back: pass --force to promote it again`);
  }
}

/**
 * A publish refused by fencing (docs/fleet.md): its manifest's `writer_epoch` is below the highest
 * epoch this table has already published or installed, so it comes from a writer that lost its lease.
 */
export class WriterFencedError extends StrataError {
  readonly code = "STRATA_WRITER_FENCED";
  constructor(
    readonly table: string,
    readonly writerEpoch: number,
    readonly highestEpoch: number,
  ) {
    super(
      `Cannot publish on table "${table}": writer epoch ${writerEpoch} is below epoch ${highestEpoch}, already published (this writer lost its lease)`,
    );
  }
}

/**
 * An import with no rows is not published unless asked for: its base would replace every row of
 * the table with none, and an empty export from a failed upstream job is a common accident.
 */
export class EmptyImportError extends StrataError {
  readonly code = "STRATA_IMPORT_INVALID";
  /** @param what what had no rows, e.g. `users.csv has no rows` */
  constructor(
    readonly table: string,
    what = "the import has no rows",
  ) {
    super(
      `Nothing published on table "${table}": ${what}, and an empty import would replace every row of the table (pass --allow-empty to publish it anyway)`,
    );
  }
}

/**
 * A version that cannot be used as the config's schema asks: a feature changed type (no reader
 * can read it), or a writer (ingest) would merge onto rows of another schema, or PACKED rows were
 * asked of a version whose layout is not the config's. `strata compact` rewrites a version into
 * the config's schema (docs/operations.md, "Changing a table's features").
 */
export class SchemaMismatchError extends StrataError {
  readonly code = "STRATA_SCHEMA_MISMATCH";
  constructor(
    readonly table: string,
    readonly version: number,
    why: string,
  ) {
    super(`Version ${version} of table "${table}" ${why}`);
  }
}
