#!/usr/bin/env node
/**
 * The `strata` command: parses the command line, runs one command, maps any error to an exit code
 * (cli/exit-codes.ts) with a one-line message on stderr.
 */
import { Command, CommanderError } from "commander";
import { CliContext, type GlobalOptions } from "./context.js";
import { registerVersionCommands } from "./commands/versions.js";
import { registerImportCommand } from "./commands/import.js";
import { registerGetCommand } from "./commands/get.js";
import { registerServeCommand } from "./commands/serve.js";
import { registerProduceCommand } from "./commands/produce.js";
import { registerIngestCommand } from "./commands/ingest.js";
import { registerFleetCommand } from "./commands/fleet.js";
import { registerBackupCommands } from "./commands/backup.js";
import { registerExportCommand } from "./commands/export.js";
import { registerDiffCommand } from "./commands/diff.js";
import { registerDeadLettersCommand } from "./commands/dead-letters.js";
import { getFromServer } from "./server-get.js";
import { startIngestIfConfigured } from "./ingest-wiring.js";
import { EXIT, exitCodeOf } from "./exit-codes.js";
import { StrataError, UsageError, errorMessage, systemCallError } from "../shared/errors.js";

/** @param json errors go out as JSON (main writes them), so the parser writes none of its own */
export function buildProgram(json = false): Command {
  const program = new Command("strata")
    .description("Strata: an online feature store with versioned, mmap-backed segments")
    .option("--data-dir <dir>", "root of the table directories (env STRATA_DATA_DIR)", undefined)
    .option("--config <file>", "table config, strata.tables.json (env STRATA_CONFIG)")
    .option("--json", "machine-readable output")
    .exitOverride();
  // Set before the commands are added, which copy these settings.
  if (json) program.configureOutput({ outputError: () => {} });
  else program.showHelpAfterError();
  const ctx = (cmd: Command): CliContext => new CliContext(cmd.optsWithGlobals<GlobalOptions>());
  registerImportCommand(program, ctx);
  registerVersionCommands(program, ctx);
  registerBackupCommands(program, ctx);
  registerExportCommand(program, ctx);
  registerDiffCommand(program, ctx);
  registerGetCommand(program, ctx, getFromServer);
  registerServeCommand(program, ctx, startIngestIfConfigured);
  registerProduceCommand(program, ctx);
  registerDeadLettersCommand(program, ctx);
  registerIngestCommand(program, ctx);
  registerFleetCommand(program, ctx);
  return program;
}

export async function main(argv: string[]): Promise<number> {
  const json = argv.includes("--json");
  try {
    await buildProgram(json).parseAsync(argv);
    return typeof process.exitCode === "number" ? process.exitCode : EXIT.OK;
  } catch (thrown) {
    if (thrown instanceof CommanderError && thrown.exitCode === 0) return EXIT.OK; // --help, --version
    const err = asStrataError(thrown);
    const code = exitCodeOf(err);
    const message = errorMessage(err);
    if (json) {
      const errorCode = err instanceof StrataError ? err.code : "STRATA_INTERNAL";
      process.stderr.write(JSON.stringify({ error: { code: errorCode, message } }) + "\n");
    } else if (!(thrown instanceof CommanderError)) {
      // (The parser has written its own message, and the usage.)
      process.stderr.write(`strata: ${message}\n`);
      if (code === EXIT.INTERNAL && err instanceof Error && err.stack) process.stderr.write(err.stack + "\n");
    }
    return code;
  }
}

/** What a command threw, as the StrataError it stands for when it stands for one. */
function asStrataError(thrown: unknown): unknown {
  // A failed system call (disk full, permission denied) is the machine's refusal, not a bug.
  const system = systemCallError(thrown);
  if (system) return system;
  // The parser's refusals, and a bad argument a command found (RangeError, as from Node's own checks).
  if (thrown instanceof CommanderError)
    return new UsageError(thrown.message.replace(/^error: /, ""), { cause: thrown });
  if (thrown instanceof RangeError) return new UsageError(thrown.message, { cause: thrown });
  return thrown;
}

process.exitCode = await main(process.argv);
