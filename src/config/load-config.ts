import { existsSync, readFileSync } from "node:fs";
import { parse as parseYaml } from "yaml";
import type { z } from "zod";
import { configSchema, type JoblogConfig } from "./config-schema.js";

/** A configuration problem a person can fix; the message names the key. */
export class ConfigError extends Error {
  override name = "ConfigError";
}

export interface LoadConfigOptions {
  /** Path of a YAML file; when absent, `./joblog.yaml` is read if it exists. */
  file?: string | undefined;
  /** Environment to take `JOBLOG_*` overrides from. */
  env?: NodeJS.ProcessEnv;
  /** Values that win over file and environment (command-line flags), as dotted paths. */
  overrides?: Record<string, unknown>;
}

export const DEFAULT_CONFIG_FILE = "joblog.yaml";
const ENV_PREFIX = "JOBLOG_";

/**
 * Loads file, then environment, then flags, and validates the result. An unknown
 * key or a wrong type throws a ConfigError naming the key's path.
 *
 * Environment overrides address a key by its path in upper case with `__`
 * between levels: `JOBLOG_SERVER__LISTEN=0.0.0.0:8080` sets `server.listen`.
 * Values are read as YAML scalars, so numbers and booleans keep their types.
 */
export function loadConfig(options: LoadConfigOptions = {}): JoblogConfig {
  const env = options.env ?? process.env;
  const file = options.file ?? (existsSync(DEFAULT_CONFIG_FILE) ? DEFAULT_CONFIG_FILE : undefined);
  const raw: Record<string, unknown> = file === undefined ? {} : readConfigFile(file);

  for (const [name, value] of Object.entries(env)) {
    if (!name.startsWith(ENV_PREFIX) || !name.includes("__") || value === undefined) continue;
    const path = name.slice(ENV_PREFIX.length).toLowerCase().split("__");
    setPath(raw, path, parseYaml(value) as unknown, `environment variable ${name}`);
  }
  for (const [dotted, value] of Object.entries(options.overrides ?? {})) {
    if (value !== undefined) setPath(raw, dotted.split("."), value, `option ${dotted}`);
  }

  const result = configSchema.safeParse(raw);
  if (!result.success) {
    throw new ConfigError(`invalid configuration${file ? ` in ${file}` : ""}:\n${formatIssues(result.error.issues)}`);
  }
  return result.data;
}

function readConfigFile(file: string): Record<string, unknown> {
  let text: string;
  try {
    text = readFileSync(file, "utf8");
  } catch (err) {
    throw new ConfigError(`cannot read config file ${file}: ${(err as NodeJS.ErrnoException).code ?? String(err)}`);
  }
  let doc: unknown;
  try {
    doc = parseYaml(text);
  } catch (err) {
    throw new ConfigError(`config file ${file} is not valid YAML: ${(err as Error).message}`);
  }
  if (doc === null || doc === undefined) return {};
  if (typeof doc !== "object" || Array.isArray(doc)) {
    throw new ConfigError(`config file ${file} must hold a mapping of keys at the top level`);
  }
  return doc as Record<string, unknown>;
}

function setPath(target: Record<string, unknown>, path: string[], value: unknown, source: string): void {
  let node = target;
  for (const [i, key] of path.entries()) {
    if (i === path.length - 1) {
      node[key] = value;
      return;
    }
    const next = node[key];
    if (next === undefined) {
      const created: Record<string, unknown> = {};
      node[key] = created;
      node = created;
    } else if (typeof next === "object" && next !== null && !Array.isArray(next)) {
      node = next as Record<string, unknown>;
    } else {
      throw new ConfigError(`${source}: ${path.slice(0, i + 1).join(".")} is not a section`);
    }
  }
}

function formatIssues(issues: readonly z.core.$ZodIssue[]): string {
  return issues
    .map((issue) => {
      const where = issue.path.join(".");
      if (issue.code === "unrecognized_keys") {
        return issue.keys.map((key) => `  ${where ? `${where}.` : ""}${key}: unknown key`).join("\n");
      }
      return `  ${where || "(top level)"}: ${issue.message}`;
    })
    .join("\n");
}
