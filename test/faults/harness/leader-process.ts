import { type ChildProcess, spawn } from "node:child_process";
import { appendFileSync } from "node:fs";
import { readFile, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { stringify } from "yaml";

/** The built CLI, as operators run it: `kill -9` hits a real leader process. */
const joblogBin = join(import.meta.dirname, "../../../bin/joblog.js");
const START_TIMEOUT_MS = 30_000;

/**
 * A leader as its own process over a fixed data directory, killed and restarted
 * on the same port so workers holding its URL find the next one.
 */
export class LeaderProcess {
  /** Every leader of this test file, for the failure report (failure-output.ts). */
  static readonly all = new Set<LeaderProcess>();
  private child: ChildProcess | undefined;
  private port = 0;
  /** Output of the current process, kept for the failure message. */
  private output = "";
  /** How many processes have been started. */
  starts = 0;

  private constructor(
    private readonly configFile: string,
    /** The leader's data directory; RocksDB's own LOG files are under it. */
    readonly dataDir: string,
    private readonly env: Record<string, string>,
  ) {}

  /** Writes `config` (merged over a loopback listen and `dataDir`) and starts the leader. */
  static async start(dir: string, dataDir: string, config: Record<string, unknown> = {}, env: Record<string, string> = {}) {
    const configFile = join(dir, "joblog.yaml");
    const server = { ...(config.server as object | undefined), data_dir: dataDir };
    await writeFile(configFile, stringify({ ...config, server }));
    const leader = new LeaderProcess(configFile, dataDir, env);
    LeaderProcess.all.add(leader);
    await leader.restart();
    return leader;
  }

  get url(): string {
    return `http://127.0.0.1:${this.port}`;
  }

  get pid(): number | undefined {
    return this.child?.pid;
  }

  get running(): boolean {
    return this.child !== undefined;
  }

  /** Starts a leader process (none may be running); resolves once it listens. */
  async restart(): Promise<void> {
    if (this.child) throw new Error("a leader process is already running");
    this.output = "";
    const child = spawn(process.execPath, [joblogBin, "leader", "--config", this.configFile, "--listen", `127.0.0.1:${this.port}`], {
      stdio: ["ignore", "pipe", "pipe"],
      env: { PATH: process.env.PATH ?? "", ...this.env },
    });
    this.child = child;
    this.starts++;
    child.stderr?.setEncoding("utf8").on("data", (s: string) => {
      this.output = (this.output + s).slice(-12_000);
    });
    // JOBLOG_FAULTS_LEADER_LOG=file keeps every leader's own log, across restarts, for a failing scenario.
    const logFile = process.env.JOBLOG_FAULTS_LEADER_LOG;
    if (logFile) {
      child.stdout?.on("data", (s: string) => appendFileSync(logFile, s));
      child.stderr?.on("data", (s: string) => appendFileSync(logFile, s));
    }
    child.once("exit", () => {
      if (this.child === child) this.child = undefined;
    });
    const address = await new Promise<string>((resolve, reject) => {
      let out = "";
      const timer = setTimeout(() => reject(new Error(`leader did not start in time: ${this.output}`)), START_TIMEOUT_MS);
      child.stdout?.setEncoding("utf8").on("data", (s: string) => {
        out += s;
        const m = /listening on (\S+)/.exec(out);
        if (m?.[1]) {
          clearTimeout(timer);
          resolve(m[1]);
        }
      });
      child.once("exit", (code, signal) => {
        clearTimeout(timer);
        reject(new Error(`leader exited (${code ?? signal}) before listening: ${this.output}`));
      });
    });
    this.port = Number(address.slice(address.lastIndexOf(":") + 1));
  }

  /** `kill -9`, and waits until the process is gone. */
  async kill(): Promise<void> {
    await this.signal("SIGKILL");
  }

  /** SIGTERM: a graceful stop. */
  async stop(): Promise<void> {
    await this.signal("SIGTERM");
  }

  /** Resident memory of the running process in bytes, from /proc. */
  async rssBytes(): Promise<number> {
    const status = await readFile(`/proc/${this.pid}/status`, "utf8");
    const kb = /VmRSS:\s+(\d+)/.exec(status)?.[1];
    return Number(kb ?? 0) * 1024;
  }

  /** Text the current process wrote to stderr (its last 12,000 characters). */
  get stderr(): string {
    return this.output;
  }

  private async signal(signal: NodeJS.Signals): Promise<void> {
    const child = this.child;
    if (!child) return;
    const exited = new Promise((resolve) => child.once("exit", resolve));
    child.kill(signal);
    await exited;
  }
}
