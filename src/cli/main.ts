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
import { StrataError, errorMessage, systemCallError } from "../shared/errors.js";

export function buildProgram(): Command {
  const program = new Command("strata")
    .description("Strata: an online feature store with versioned, mmap-backed segments")
    .option("--data-dir <dir>", "root of the table directories (env STRATA_DATA_DIR)", undefined)
    .option("--config <file>", "table config, strata.tables.json (env STRATA_CONFIG)")
    .option("--json", "machine-readable output")
    .showHelpAfterError()
    .exitOverride();
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
  try {
    await buildProgram().parseAsync(argv);
    return typeof process.exitCode === "number" ? process.exitCode : EXIT.OK;
  } catch (thrown) {
    // A failed system call (disk full, permission denied) is the machine's refusal, not a bug.
    const err = systemCallError(thrown) ?? thrown;
    if (err instanceof CommanderError) return err.exitCode === 0 ? EXIT.OK : EXIT.USAGE;
    const code = err instanceof RangeError ? EXIT.USAGE : exitCodeOf(err);
    const json = argv.includes("--json");
    const message = errorMessage(err);
    if (json) {
      process.stderr.write(
        JSON.stringify({
          error: { code: err instanceof StrataError ? err.code : "STRATA_INTERNAL", message },
        }) + "\n",
      );
    } else {
      process.stderr.write(`strata: ${message}\n`);
      if (code === EXIT.INTERNAL && err instanceof Error && err.stack) process.stderr.write(err.stack + "\n");
    }
    return code;
  }
}

process.exitCode = await main(process.argv);
