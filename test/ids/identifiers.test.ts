import { describe, expect, test } from "vitest";
import {
  type IdField,
  identifierProblem,
  isReservedTask,
  MAX_ID_LENGTH,
  RUN_LOG_TASK,
  SERVER_EVENTS_TASK,
} from "../../src/ids/identifiers.js";

const FIELDS: IdField[] = ["workspace", "workflow", "run_id", "task"];

describe("identifierProblem", () => {
  test.each(["a", "R1", "build", "build-2024.05.06", "my_task", "a.b-c_d", "9lives", "x".repeat(MAX_ID_LENGTH)])(
    "accepts %j in every field",
    (value) => {
      for (const field of FIELDS) expect(identifierProblem(field, value)).toBeUndefined();
    },
  );

  test.each([
    ["", "is empty"],
    ["..", '".."'],
    ["a..b", '".."'],
    ["/", "may only contain"],
    ["a/b", "may only contain"],
    ["a\\b", "may only contain"],
    ["\u0000", "may only contain"],
    ["a\u0000b", "may only contain"],
    ["\n", "may only contain"],
    ["a\nb", "may only contain"],
    ["line\n", "may only contain"],
    ["a b", "may only contain"],
    ["ünï", "may only contain"],
    [".hidden", "must start with a letter or digit"],
    ["-flag", "must start with a letter or digit"],
    ["_run", "must start with a letter or digit"],
    ["x".repeat(MAX_ID_LENGTH + 1), `${MAX_ID_LENGTH + 1} characters long; the limit is ${MAX_ID_LENGTH}`],
  ])("refuses %j, saying why", (value, why) => {
    for (const field of FIELDS.filter((f) => f !== "task" || !isReservedTask(value))) {
      const problem = identifierProblem(field, value);
      expect(problem).toContain(field);
      expect(problem).toContain(why);
    }
  });

  test("a refusal names the field and quotes the value", () => {
    expect(identifierProblem("run_id", "a/b")).toMatch(/^run_id "a\/b" /);
    expect(identifierProblem("workspace", "a\nb")).toContain('"a\\nb"');
  });

  test("accepts _run and _server only as a task", () => {
    for (const reserved of [RUN_LOG_TASK, SERVER_EVENTS_TASK]) {
      expect(identifierProblem("task", reserved)).toBeUndefined();
      for (const field of FIELDS.filter((f) => f !== "task")) expect(identifierProblem(field, reserved)).toBeDefined();
    }
  });

  test("other names starting with an underscore are refused even as a task", () => {
    for (const value of ["_runs", "_Run", "_other", "_"]) expect(identifierProblem("task", value)).toBeDefined();
  });
});

describe("isReservedTask", () => {
  test("is true only for _run and _server", () => {
    expect(RUN_LOG_TASK).toBe("_run");
    expect(SERVER_EVENTS_TASK).toBe("_server");
    expect(isReservedTask("_run")).toBe(true);
    expect(isReservedTask("_server")).toBe(true);
    for (const other of ["run", "_runs", "build", ""]) expect(isReservedTask(other)).toBe(false);
  });
});
