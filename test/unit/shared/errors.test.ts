import { describe, expect, it } from "vitest";
import { readFileSync } from "node:fs";
import { ERROR_CODES } from "../../../src/shared/errors.js";
import { exitCodeOf } from "../../../src/cli/exit-codes.js";
import { toGrpcStatus } from "../../../src/serve/status-mapping.js";
import { SegmentCorruptError } from "../../../src/format/errors.js";
import { VersionNotFoundError } from "../../../src/storage/errors.js";
import { status } from "@grpc/grpc-js";

describe("error catalogue", () => {
  it("docs/errors.md lists exactly the codes the code defines", () => {
    const documented = [
      ...readFileSync("docs/errors.md", "utf8").matchAll(/^\| `(STRATA_[A-Z_]+)` \|/gm),
    ].map((m) => m[1]);
    expect(new Set(documented)).toEqual(new Set(ERROR_CODES));
    expect(documented).toHaveLength(ERROR_CODES.length);
  });

  it("names errors after their class and maps them in one place each", () => {
    const err = new VersionNotFoundError("users", 7);
    expect(err.name).toBe("VersionNotFoundError");
    expect(err.message).toBe('Version 7 of table "users" is not retained');
    expect(toGrpcStatus(err).code).toBe(status.NOT_FOUND);
    expect(exitCodeOf(err)).toBe(4);
    expect(toGrpcStatus(new SegmentCorruptError("x")).code).toBe(status.DATA_LOSS);
    expect(toGrpcStatus(new Error("secret detail"))).toEqual({
      code: status.INTERNAL,
      details: "Internal error (see the server log)",
    });
  });
});
