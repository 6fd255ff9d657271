import { describe, expect, it } from "vitest";
import { closeSync, openSync, readFileSync, writeSync } from "node:fs";
import { ERROR_CODES, SystemCallError, systemCallError, withPath } from "../../../src/shared/errors.js";
import { exitCodeOf } from "../../../src/cli/exit-codes.js";
import { errorCodeOfCall, toGrpcStatus, toServiceError } from "../../../src/serve/status-mapping.js";
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
    // A failed call carries its code in a trailer, which a client reads back.
    const failure = toServiceError(err);
    expect(failure).toMatchObject({ code: status.NOT_FOUND, details: err.message });
    expect(errorCodeOfCall(failure)).toBe("STRATA_VERSION_NOT_FOUND");
    expect(errorCodeOfCall(toServiceError(new Error("secret detail")))).toBeNull();
    expect(errorCodeOfCall({})).toBeNull();
  });

  it("reports a failed system call with its reason and file, as exit 10", () => {
    let thrown: unknown;
    try {
      readFileSync("/nonexistent/strata");
    } catch (err) {
      thrown = err;
    }
    const err = systemCallError(thrown);
    expect(err).toBeInstanceOf(SystemCallError);
    expect(err!.message).toBe("no such file or directory (ENOENT): open '/nonexistent/strata'");
    expect([err!.errno, err!.syscall, err!.path]).toEqual(["ENOENT", "open", "/nonexistent/strata"]);
    expect(err!.cause).toBe(thrown);
    expect(exitCodeOf(err)).toBe(10);
    expect(systemCallError(new Error("ENOSPC: not a system call"))).toBeNull();
    const refused = Object.assign(new Error("connect ECONNREFUSED 127.0.0.1:1"), {
      code: "ECONNREFUSED",
      syscall: "connect",
    });
    expect(systemCallError(refused)).toBeNull();
    expect(systemCallError("ENOSPC")).toBeNull();
  });

  it("names the file of a failed call on a descriptor, and keeps a name already there", () => {
    const fd = openSync("/dev/null", "r");
    let thrown: unknown;
    try {
      writeSync(fd, "x"); // EBADF: open for reading only
    } catch (err) {
      thrown = withPath(err, "/data/t/data/.tmp-x.seg");
    } finally {
      closeSync(fd);
    }
    expect(systemCallError(thrown)!.message).toBe(
      "bad file descriptor (EBADF): write '/data/t/data/.tmp-x.seg'",
    );
    expect((withPath(thrown, "/elsewhere") as NodeJS.ErrnoException).path).toBe("/data/t/data/.tmp-x.seg");
  });
});
