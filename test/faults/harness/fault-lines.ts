/**
 * The lines fault-suite workers write: unique per task and position, so the
 * checker knows each served line by its text alone, and ~100 bytes like CI output.
 */
export function faultLine(task: string, i: number): string {
  return `${task}:${String(i).padStart(8, "0")} compiling src/module_${i % 97}/file_${i}.ts (${(i * 7919) % 100000} bytes) ok`;
}

/** The first `count` lines of a task. */
export function faultLines(task: string, count: number): string[] {
  return Array.from({ length: count }, (_, i) => faultLine(task, i));
}
