import { status } from "@grpc/grpc-js";
import type { Command } from "commander";
import { grpcCode, type LeaderClient } from "../../client/leader-client.js";
import { Backoff, sleep } from "../../worker/backoff.js";
import { parseCount, parseOffset } from "../cli-values.js";
import { leaderClient } from "../leader-connection.js";
import { type OutputFormat, parseFormat, renderRecords, writeOut } from "../log-output.js";

interface TailOptions {
  leader: string;
  offset?: string;
  lines: string;
  follow?: boolean;
  format: string;
}

export function registerTail(program: Command, defaultLeader: string): void {
  program
    .command("tail")
    .description("print the end of a task log; with --follow, keep printing until the task completes")
    .argument("<run>", "run id")
    .argument("<task>", "task name, _run or _server")
    .option("--leader <url>", "leader URL (env JOBLOG_LEADER)", defaultLeader)
    .option("--offset <bytes>", "start at this byte offset instead of the last --lines lines")
    .option("-n, --lines <count>", "how many of the last lines to start with", "10")
    .option("-f, --follow", "stream new lines as they are written, until the task completes")
    .option("--format <format>", "text or jsonl", "text")
    .action(async (run: string, task: string, opts: TailOptions) => {
      const format = parseFormat(opts.format);
      const client = leaderClient(opts.leader);
      const stop = new AbortController();
      const onSignal = () => stop.abort();
      process.once("SIGINT", onSignal);
      try {
        const start =
          opts.offset === undefined
            ? await lastLinesOffset(client, run, task, parseCount(opts.lines, "--lines"))
            : parseOffset(opts.offset);
        if (opts.follow) await follow(client, run, task, start, format, stop.signal);
        else await printUntilEnd(client, run, task, start, format);
      } finally {
        process.off("SIGINT", onSignal);
        client.close();
      }
    });
}

/** Offset of the start of the last `lines` records, found by reading windows backwards from the end. */
async function lastLinesOffset(client: LeaderClient, run: string, task: string, lines: number): Promise<number> {
  const length = Number((await client.read({ runId: run, task, maxBytes: 1 })).length);
  for (let window = 64 * 1024; ; window *= 4) {
    const from = Math.max(0, length - window);
    const starts: number[] = [];
    let offset = from;
    while (offset < length) {
      const r = await client.read({ runId: run, task, offset: BigInt(offset) });
      if (r.data.length === 0) break;
      let at = Number(r.offset);
      for (const record of Buffer.from(r.data).toString("latin1").split("\n")) {
        if (record === "") continue;
        starts.push(at);
        at += record.length + 1;
      }
      offset = Number(r.nextOffset);
    }
    if (starts.length >= lines || from === 0) return starts.length >= lines ? (starts[starts.length - lines] as number) : 0;
  }
}

async function printUntilEnd(client: LeaderClient, run: string, task: string, start: number, format: OutputFormat): Promise<void> {
  let offset = start;
  for (;;) {
    const r = await client.read({ runId: run, task, offset: BigInt(offset) });
    await writeOut(renderRecords(r.data, format));
    offset = Number(r.nextOffset);
    if (r.data.length === 0 || offset >= Number(r.length)) return;
  }
}

/** Follows with Tail; when the leader goes away, reconnects from the last offset printed. */
async function follow(
  client: LeaderClient,
  run: string,
  task: string,
  start: number,
  format: OutputFormat,
  signal: AbortSignal,
): Promise<void> {
  let offset = start;
  const backoff = new Backoff(200, 5000);
  while (!signal.aborted) {
    try {
      for await (const message of client.tail({ runId: run, task, offset: BigInt(offset) }, { signal })) {
        await writeOut(renderRecords(message.data, format));
        offset = Number(message.nextOffset);
        backoff.reset();
        if (message.complete) return;
      }
      return;
    } catch (err) {
      if (signal.aborted) return;
      const code = grpcCode(err);
      if (code !== status.UNAVAILABLE && code !== status.INTERNAL) throw err;
      await sleep(backoff.next(), signal);
    }
  }
}
