import { describe, expect, test } from "vitest";
import { checkDelivery, flagged, servedLines, sumReports } from "./harness/delivery-checker.js";

const written = ["a", "b", "c", "d", "e"];

describe("the fault suite's delivery checker", () => {
  test("a log served exactly as written is clean, unacknowledged lines served or not", () => {
    const report = checkDelivery({ written, acknowledged: ["a", "b", "c"], served: ["a", "b", "c", "d"] });
    expect(report).toEqual({ acknowledged: 3, lost: 0, duplicated: 0, phantom: 0, reordered: 0 });
    expect(flagged(report)).toBe(false);
  });

  test("an acknowledged line the leader does not serve is lost", () => {
    const report = checkDelivery({ written, acknowledged: ["a", "b", "c"], served: ["a", "c"] });
    expect(report.lost).toBe(1);
    expect(flagged(report)).toBe(true);
  });

  test("a line served twice is duplicated, however far apart", () => {
    const report = checkDelivery({ written, acknowledged: written, served: ["a", "b", "c", "b", "c", "d", "e"] });
    expect(report.duplicated).toBe(2);
    expect(report.reordered).toBe(0);
    expect(report.lost).toBe(0);
  });

  test("a served line nobody wrote is a phantom", () => {
    const report = checkDelivery({ written, acknowledged: ["a"], served: ["a", "zz", "b"] });
    expect(report.phantom).toBe(1);
  });

  test("a line served before one written earlier is reordered", () => {
    const report = checkDelivery({ written, acknowledged: written, served: ["a", "c", "b", "d", "e"] });
    expect(report.reordered).toBe(1);
    expect(report.lost + report.duplicated + report.phantom).toBe(0);
  });

  test("a gap in what is served (unacknowledged lines missing) is not a fault by itself", () => {
    expect(flagged(checkDelivery({ written, acknowledged: ["a", "b"], served: ["a", "b", "e"] }))).toBe(false);
  });

  test("reports add up across tasks", () => {
    const a = checkDelivery({ written, acknowledged: written, served: ["a", "b"] });
    const b = checkDelivery({ written, acknowledged: written, served: [...written, "a"] });
    expect(sumReports([a, b])).toEqual({ acknowledged: 10, lost: 3, duplicated: 1, phantom: 0, reordered: 0 });
  });

  test("served lines are read from canonical JSONL, escapes included", () => {
    const jsonl = `${JSON.stringify({ ts: "2025-02-12T10:56:45.123Z", stream: "stdout", step: "t", line: 'say "hi"\n' })}\n`;
    expect(servedLines(jsonl)).toEqual(['say "hi"\n']);
    expect(servedLines("")).toEqual([]);
  });
});
