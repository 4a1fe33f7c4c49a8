/** Printing canonical JSONL as a person asked for it. */

export type OutputFormat = "text" | "jsonl";

export function parseFormat(value: string): OutputFormat {
  if (value !== "text" && value !== "jsonl") throw new Error(`--format must be text or jsonl, not ${value}`);
  return value;
}

/** jsonl: the canonical bytes exactly; text: each record's line, as the command printed it. */
export function renderRecords(data: Uint8Array, format: OutputFormat): Buffer {
  const bytes = Buffer.from(data.buffer, data.byteOffset, data.byteLength);
  if (format === "jsonl") return bytes;
  let out = "";
  for (const record of bytes.toString("utf8").split("\n")) {
    if (record === "") continue;
    out += `${(JSON.parse(record) as { line: string }).line}\n`;
  }
  return Buffer.from(out);
}

/** Writes to stdout, waiting when the pipe is full (e.g. `joblog read … | less`). */
export function writeOut(chunk: Buffer): Promise<void> {
  if (chunk.length === 0 || process.stdout.write(chunk)) return Promise.resolve();
  return new Promise((resolve) => process.stdout.once("drain", resolve));
}
