import type { LeaderClient } from "../leader-client.js";

/**
 * Saves a whole log as a file: the canonical JSONL bytes exactly, or the
 * lines as the task printed them (what `joblog read --format text` prints).
 * Fetched with Read from offset 0 up to the length at the start, so the file
 * is the log as it was when the download began.
 */

export type DownloadFormat = "jsonl" | "text";

const READ_BYTES = 1024 * 1024;
const decoder = new TextDecoder();
const encoder = new TextEncoder();

function asText(data: Uint8Array): Uint8Array {
  let out = "";
  for (const record of decoder.decode(data).split("\n")) {
    if (record !== "") out += `${(JSON.parse(record) as { line: string }).line}\n`;
  }
  return encoder.encode(out);
}

export async function downloadLog(client: LeaderClient, runId: string, task: string, format: DownloadFormat): Promise<void> {
  const parts: Uint8Array<ArrayBuffer>[] = [];
  let offset = 0n;
  let length: bigint | undefined;
  for (;;) {
    const r = await client.read({ runId, task, offset, maxBytes: READ_BYTES });
    length ??= r.length;
    const end = r.nextOffset > length ? length : r.nextOffset;
    const data = r.data.subarray(0, Number(end - r.offset));
    if (data.length > 0) parts.push(new Uint8Array(format === "jsonl" ? data : asText(data)));
    offset = end;
    if (offset >= length || r.data.length === 0) break;
  }
  const blob = new Blob(parts, { type: format === "jsonl" ? "application/x-ndjson" : "text/plain; charset=utf-8" });
  const url = URL.createObjectURL(blob);
  const link = document.createElement("a");
  link.href = url;
  link.download = `${runId}-${task}.${format === "jsonl" ? "jsonl" : "log"}`;
  document.body.append(link);
  link.click();
  link.remove();
  setTimeout(() => URL.revokeObjectURL(url), 60_000);
}
