import { execFile, type ExecFileOptions } from "node:child_process";
import { resolve } from "node:path";

/** The built CLI (`npm test` builds first). */
export const CLI = resolve("dist/cli/main.js");

export interface CommandResult {
  stdout: string;
  stderr: string;
  /** The exit code; null when the command was killed (a timeout). */
  code: number | null;
}

/** Runs `file` with `args` and resolves with its output and exit code, whatever the code. */
export function runCommand(
  file: string,
  args: string[],
  options: ExecFileOptions = {},
): Promise<CommandResult> {
  return new Promise((done) =>
    execFile(file, args, { maxBuffer: 1 << 30, ...options, encoding: "utf8" }, (err, stdout, stderr) =>
      done({ stdout, stderr, code: err === null ? 0 : typeof err.code === "number" ? err.code : null }),
    ),
  );
}
