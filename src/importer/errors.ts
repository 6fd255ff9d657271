import { StrataError } from "../shared/errors.js";

/**
 * One row (or the header) of an import file is unusable. The message names where and why:
 *
 *   line 17, column 3 ("age"): "abc" is not an int64        (CSV)
 *   line 17, field "age": 1.5 is not an int64                 (JSONL)
 *   line 4: invalid JSON: Unexpected token } in JSON at position 12
 *   row 5, column "age": "x" is not an int64                  (Parquet: no lines, rows)
 */
export class ImportRowError extends StrataError {
  readonly code = "STRATA_IMPORT_INVALID";
  /**
   * 1-based physical line of the file where the problem is (for a multi-line CSV record, its first
   * line unless said otherwise); in a Parquet file, the 1-based row.
   */
  readonly line: number;
  /** 1-based CSV column number; null for JSONL and for problems of the whole line. */
  readonly column: number | null;
  /** The CSV column name or the JSONL field name, when known. */
  readonly field: string | null;
  /** What is wrong, without the location. */
  readonly reason: string;
  /** What `line` counts: lines of a text file, or rows of a Parquet file. */
  readonly unit: "line" | "row";

  constructor(
    reason: string,
    where: { line: number; column?: number | null; field?: string | null; unit?: "line" | "row" },
    options?: ErrorOptions,
  ) {
    super(
      formatLocation(where.unit ?? "line", where.line, where.column ?? null, where.field ?? null) +
        ": " +
        reason,
      options,
    );
    this.line = where.line;
    this.column = where.column ?? null;
    this.field = where.field ?? null;
    this.reason = reason;
    this.unit = where.unit ?? "line";
  }
}

/** The import file as a whole is unusable (an unknown extension, say): nothing to point at. */
export class ImportFileError extends StrataError {
  readonly code = "STRATA_IMPORT_INVALID";
}

function formatLocation(
  unit: "line" | "row",
  line: number,
  column: number | null,
  field: string | null,
): string {
  let s = `${unit} ${line}`;
  if (column !== null) {
    s += `, column ${column}`;
    if (field !== null) s += ` (${JSON.stringify(field)})`;
  } else if (field !== null) {
    // A Parquet file's fields are its columns.
    s += unit === "row" ? `, column ${JSON.stringify(field)}` : `, field ${JSON.stringify(field)}`;
  }
  return s;
}
