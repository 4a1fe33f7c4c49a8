import { maskProblem } from "../lines/secret-masker.js";
import { CliError } from "./cli-errors.js";

/** The environment variable naming, comma-separated, other variables whose values are masked. */
export const MASK_ENV_VAR = "JOBLOG_MASK_ENV";

export interface MaskSources {
  /** `--mask VALUE`, as given (visible to `ps`: for values that are not secret elsewhere). */
  values: readonly string[];
  /** `--mask-env NAME`: names of environment variables holding secrets. */
  envNames: readonly string[];
  env: NodeJS.ProcessEnv;
}

/**
 * The values `joblog run` masks: `--mask` values, and the values of the variables
 * named by `--mask-env` and by JOBLOG_MASK_ENV — a CI system passes secrets as
 * environment variables, so naming them keeps the values off the command line.
 * A named variable that is unset or empty holds no secret (a fork's build often
 * gets empty secrets) and is skipped with a note; a value shorter than 4 bytes is
 * refused, naming where it came from but not the value.
 */
export function collectMasks(sources: MaskSources, note: (message: string) => void): string[] {
  const masks: string[] = [];
  const add = (origin: string, value: string) => {
    const problem = maskProblem(origin, value);
    if (problem) throw new CliError(problem.message, 2);
    if (!masks.includes(value)) masks.push(value);
  };
  for (const [i, value] of sources.values.entries()) add(`--mask value ${i + 1}`, value);
  const listed = (sources.env[MASK_ENV_VAR] ?? "")
    .split(",")
    .map((name) => name.trim())
    .filter((name) => name !== "");
  for (const [name, origin] of [
    ...sources.envNames.map((n) => [n, `--mask-env ${n}`] as const),
    ...listed.map((n) => [n, `${MASK_ENV_VAR} entry ${n}`] as const),
  ]) {
    const value = sources.env[name];
    if (value === undefined || value === "") {
      note(`joblog: ${origin}: environment variable ${name} is unset or empty; nothing to mask for it`);
      continue;
    }
    add(`${origin} (the value of ${name})`, value);
  }
  return masks;
}
