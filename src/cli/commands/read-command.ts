import type { Command } from "commander";
import { parseOffset } from "../cli-values.js";
import { leaderClient } from "../leader-connection.js";
import { parseFormat, renderRecords, writeOut } from "../log-output.js";

export function registerRead(program: Command, defaultLeader: string): void {
  program
    .command("read")
    .description("print a task log (or _run, _server) from an offset to its current end")
    .argument("<run>", "run id")
    .argument("<task>", "task name, _run or _server")
    .option("--leader <url>", "leader URL (env JOBLOG_LEADER)", defaultLeader)
    .option("--offset <bytes>", "byte offset to start from", "0")
    .option("--format <format>", "text (the lines) or jsonl (the canonical records, byte for byte)", "text")
    .action(async (run: string, task: string, opts: { leader: string; offset: string; format: string }) => {
      const format = parseFormat(opts.format);
      const client = leaderClient(opts.leader);
      try {
        let offset = parseOffset(opts.offset);
        let end = Number.POSITIVE_INFINITY;
        while (offset < end) {
          const r = await client.read({ runId: run, task, offset: BigInt(offset) });
          // Read up to the length seen first, so a growing log still ends the command.
          if (end === Number.POSITIVE_INFINITY) end = Number(r.length);
          await writeOut(renderRecords(r.data, format));
          if (r.data.length === 0) break;
          offset = Number(r.nextOffset);
        }
      } finally {
        client.close();
      }
    });
}
