import { Command, CommanderError } from "commander";
import { DEFAULT_LEADER } from "../client/leader-url.js";
import { describeError } from "./cli-errors.js";
import { registerBackup } from "./commands/backup-command.js";
import { registerKeys } from "./commands/keys-command.js";
import { registerLeader } from "./commands/leader-command.js";
import { registerRead } from "./commands/read-command.js";
import { registerRestore } from "./commands/restore-command.js";
import { registerRun } from "./commands/run-command.js";
import { registerRuns } from "./commands/runs-command.js";
import { registerTail } from "./commands/tail-command.js";
import { registerTokens } from "./commands/tokens-command.js";
import { registerConnectionOptions, useConnectionFlags } from "./leader-connection.js";

// Each command loads what its action needs when it runs (the leader, the stores, backups): `joblog run`,
// which wraps every CI step, should not start RocksDB, pino and the metrics to forward a few lines.

const defaultLeader = process.env.JOBLOG_LEADER || DEFAULT_LEADER;

const program = new Command("joblog")
  .description("joblog: stream CI task logs to a leader, and read and tail them")
  .showHelpAfterError("(run with --help for usage)")
  .exitOverride();

// The command that ran, so an error names the leader *it* was given, not another command's default.
let active: Command | undefined;
program.hook("preAction", (_program, actionCommand) => {
  active = actionCommand;
  useConnectionFlags(actionCommand);
});
registerConnectionOptions(program);

registerLeader(program);
registerRun(program, defaultLeader);
registerRead(program, defaultLeader);
registerTail(program, defaultLeader);
registerRuns(program, defaultLeader);
registerKeys(program, defaultLeader);
registerBackup(program, defaultLeader);
registerRestore(program);
registerTokens(program);

try {
  await program.parseAsync(process.argv);
} catch (err) {
  if (err instanceof CommanderError) {
    // Commander already printed the usage problem (or the help text).
    process.exitCode = err.exitCode === 0 ? 0 : 2;
  } else {
    const leader = active?.optsWithGlobals<{ leader?: string }>().leader;
    process.stderr.write(`joblog: ${describeError(err, leader)}\n`);
    process.exitCode = (err as { exitCode?: number }).exitCode ?? 1;
  }
}
