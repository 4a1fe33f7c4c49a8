import type { Command } from "commander";
import { stringify } from "yaml";
import { generateToken, hashToken } from "../../auth/bearer-token.js";
import { tokenSchema } from "../../config/config-schema.js";
import { CliError } from "../cli-errors.js";

interface CreateOptions {
  role: string;
  name?: string;
  workspace: string[];
  run?: string;
}

/** `joblog tokens create`: a new token, printed once, and the config entry (its hash) to add. */
export function registerTokens(program: Command): void {
  const tokens = program.command("tokens").description("make bearer tokens for the leader's auth.tokens");
  tokens
    .command("create")
    .description("print a new random token once, and the lines to add under auth.tokens in the leader's config (only its SHA-256)")
    .requiredOption("--role <role>", "worker (OpenTask, Push, CompleteRun), reader (Read, Tail, ListRuns, GetRun, Search) or admin (all)")
    .option("--name <name>", "a name for the token (default: the role and a few random characters)")
    .option("--workspace <name>", "limit the token to this workspace (repeat for several)", (v: string, all: string[]) => [...all, v], [])
    .option("--run <id>", "worker only: limit the token to this run")
    .action((opts: CreateOptions) => {
      const token = generateToken();
      const entry = {
        name:
          opts.name ??
          `${opts.role}-${token
            .slice(3, 9)
            .toLowerCase()
            .replace(/[^a-z0-9]/g, "x")}`,
        sha256: hashToken(token),
        role: opts.role,
        ...(opts.workspace.length > 0 && { workspaces: opts.workspace }),
        ...(opts.run !== undefined && { run: opts.run }),
      };
      const checked = tokenSchema.safeParse(entry);
      if (!checked.success) {
        const issue = checked.error.issues[0];
        throw new CliError(
          `--${issue?.path[0] === "workspaces" ? "workspace" : String(issue?.path[0] ?? "role")}: ${issue?.message ?? "invalid"}`,
          2,
        );
      }
      process.stdout.write(`token (shown only now; give it to the client as JOBLOG_TOKEN or --token):\n\n  ${token}\n\n`);
      process.stdout.write("add to the leader's config under auth.tokens, then restart it:\n\n");
      const yaml = stringify({ auth: { tokens: [checked.data] } });
      process.stdout.write(`${yaml.replace(/^/gm, "  ").trimEnd()}\n`);
    });
}
