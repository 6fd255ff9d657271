/**
 * `strata compact --drop-expired` (docs/operations.md, "Expired rows"): rows past the table's
 * max_age_ms, which servers answer as OUTSIDE_MAX_AGE, are left out of the new base and are then
 * NOT_FOUND; the others stay as they were.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { runStrata } from "../helpers/cli.js";

const DAY = 86_400_000;

describe("strata compact --drop-expired", () => {
  let dir: string;
  const strata = (...args: string[]) => runStrata(dir, "data", args);

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), "strata-expire-"));
    writeFileSync(
      join(dir, "tables.json"),
      JSON.stringify({
        tables: [
          { name: "sessions", key: "id", max_age_ms: DAY, features: [{ name: "clicks", type: "int64" }] },
          { name: "users", key: "id", features: [{ name: "age", type: "int64" }] },
        ],
      }),
    );
    const now = Date.now();
    const csv = ["id,clicks,event_time_ms", `stale,1,${now - 2 * DAY}`, `fresh,2,${now - 3_600_000}`];
    writeFileSync(join(dir, "sessions.csv"), csv.join("\n") + "\n");
    expect((await strata("import", "sessions", join(dir, "sessions.csv"))).code).toBe(0);
  });
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  const statuses = async () => {
    const r = await strata("--json", "get", "sessions", "stale", "fresh");
    return (JSON.parse(r.stdout) as { rows: { status: string }[] }).rows.map((row) => row.status);
  };

  it("leaves out the rows past max_age_ms and keeps the rest", async () => {
    expect(await statuses()).toEqual(["OUTSIDE_MAX_AGE", "FOUND"]);
    const r = await strata("compact", "sessions", "--drop-expired");
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toContain("sessions: compacted into v2 (1 records, 1 expired rows left out)");
    expect(await statuses()).toEqual(["NOT_FOUND", "FOUND"]);
    // v1 is retained: a rollback brings the expired row back.
    expect((await strata("diff", "sessions")).stdout).toContain("0 added, 1 removed, 0 changed, 1 unchanged");
  });

  it("refuses a table without max_age_ms", async () => {
    const r = await strata("compact", "users", "--drop-expired");
    expect(r.code).toBe(2);
    expect(r.stderr).toContain('Table "users" has no max_age_ms: none of its rows expire');
  });
});
