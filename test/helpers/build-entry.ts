// Compiles one entry point of src/ (and what it imports) with tsc into a private folder under
// dist/, for tests that run it in a child process: the shared dist/ may be stale or mid-build by
// someone else, and the repository has no TypeScript loader for node. The folder is inside the
// package, so the child resolves node_modules and proto/ as the real build does.
import { spawnSync } from "node:child_process";
import { existsSync, mkdirSync, rmSync, writeFileSync } from "node:fs";
import { randomUUID } from "node:crypto";
import { join } from "node:path";
import { fileURLToPath } from "node:url";

const repo = fileURLToPath(new URL("../..", import.meta.url));

export interface BuiltEntry {
  /** The compiled .js of the entry. */
  readonly path: string;
  remove(): void;
}

/** `entry` is relative to src/, e.g. "ingest/ingest-main.ts". Takes a few seconds. */
export function buildEntry(entry: string): BuiltEntry {
  const outDir = join(repo, "dist", "test-build", `${process.pid}-${randomUUID().slice(0, 8)}`);
  mkdirSync(outDir, { recursive: true });
  const tsconfig = join(outDir, "tsconfig.json");
  writeFileSync(
    tsconfig,
    JSON.stringify({
      extends: join(repo, "tsconfig.json"),
      compilerOptions: {
        rootDir: join(repo, "src"),
        outDir,
        declaration: false,
        sourceMap: false,
        incremental: false,
      },
      files: [join(repo, "src", entry)],
      include: [],
    }),
  );
  const tsc = spawnSync(
    process.execPath,
    [join(repo, "node_modules", "typescript", "bin", "tsc"), "-p", tsconfig],
    {
      cwd: repo,
      encoding: "utf8",
      timeout: 120_000,
    },
  );
  const path = join(outDir, entry.replace(/\.ts$/, ".js"));
  if (!existsSync(path)) {
    throw new Error(`tsc did not compile src/${entry} (exit ${tsc.status}):\n${tsc.stdout}${tsc.stderr}`);
  }
  // Type errors elsewhere in the tree (work in progress) still emit JavaScript: say so, go on.
  if (tsc.status !== 0)
    process.stderr.write(`[build-entry] tsc reported errors, using its output anyway:\n${tsc.stdout}\n`);
  return { path, remove: () => rmSync(outDir, { recursive: true, force: true }) };
}
