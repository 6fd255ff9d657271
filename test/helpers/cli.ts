import { execFile, type ExecFileOptions } from "node:child_process";
import { join, resolve } from "node:path";

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

/**
 * The built CLI on the data dir `dir/dataDir` with the config `dir/tables.json`, as the CLI tests
 * lay their folders out; `options.env` adds to the environment.
 */
export function runStrata(
  dir: string,
  dataDir: string,
  args: string[],
  options: { env?: Record<string, string>; timeout?: number } = {},
): Promise<CommandResult> {
  return runCommand(
    "node",
    [CLI, "--data-dir", join(dir, dataDir), "--config", join(dir, "tables.json"), ...args],
    { env: { ...process.env, ...options.env }, ...(options.timeout ? { timeout: options.timeout } : {}) },
  );
}
