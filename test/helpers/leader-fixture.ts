import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { configSchema, type JoblogConfig } from "../../src/config/config-schema.js";
import { type Leader, startLeader } from "../../src/leader/leader.js";

export interface LeaderFixture {
  leader: Leader;
  url: string;
  dataDir: string;
  config: JoblogConfig;
  /**
   * Stops the leader and starts a new one on the same data directory and port;
   * `between` runs while it is stopped, `config` may change its configuration.
   */
  restart(options?: { between?: () => Promise<void>; config?: (config: JoblogConfig) => JoblogConfig }): Promise<void>;
  /** Stops the leader and removes the data directory. */
  dispose(): Promise<void>;
  logs: string[];
}

type DeepPartial<T> = { [K in keyof T]?: NonNullable<T[K]> extends object ? DeepPartial<NonNullable<T[K]>> : T[K] };

/** A real leader on a loopback port with a fresh data directory. */
export async function startTestLeader(overrides: DeepPartial<JoblogConfig> = {}): Promise<LeaderFixture> {
  const dataDir = await mkdtemp(join(tmpdir(), "joblog-test-"));
  const config = configSchema.parse({
    ...overrides,
    server: { ...overrides.server, listen: "127.0.0.1:0", data_dir: dataDir },
  });
  const logs: string[] = [];
  const log = (message: string, err?: unknown) => logs.push(`${message}${err ? `: ${String(err)}` : ""}`);
  const fixture: LeaderFixture = {
    leader: await startLeader(config, log),
    url: "",
    dataDir,
    config,
    logs,
    async restart(options = {}) {
      await fixture.leader.stop();
      await options.between?.();
      // Same port, so clients holding the URL reconnect to the new leader.
      const changed = options.config ? options.config(fixture.config) : fixture.config;
      fixture.config = configSchema.parse({ ...changed, server: { ...changed.server, listen: `127.0.0.1:${fixture.leader.port}` } });
      fixture.leader = await startLeader(fixture.config, log);
    },
    async dispose() {
      await fixture.leader.stop();
      await rm(dataDir, { recursive: true, force: true });
    },
  };
  fixture.url = `http://${fixture.leader.address}`;
  return fixture;
}
