/**
 * The canonical record, computed independently of the leader's encoder: compact
 * JSON with keys in the documented order and a newline.
 */
export function expectedRecord(tsMs: number, stream: "stdout" | "stderr", step: string, line: string): string {
  return `${JSON.stringify({ ts: new Date(tsMs).toISOString(), stream, step, line })}\n`;
}

/** A realistic ~100-byte CI line for line number `i`. */
export function ciLine(task: string, i: number): string {
  return `[${task}] step ${i % 17}: compiling src/module_${i % 97}/file_${i}.ts (${(i * 7919) % 100000} bytes) ok`;
}
