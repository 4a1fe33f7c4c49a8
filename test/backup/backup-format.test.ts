import { expect, test } from "vitest";
import { BackupCorruptError, encodeRecord, MAX_VALUE_BYTES, parseManifest, RecordDecoder } from "../../src/backup/backup-format.js";

test("records split across reads at every byte come back whole and in order", () => {
  const records: Array<[Buffer, Buffer]> = [
    [Buffer.from("C run\0task\0"), Buffer.alloc(3000, 7)],
    [Buffer.from("S run\0task"), Buffer.from('{"seq":3}')],
    [Buffer.from("K"), Buffer.alloc(0)],
  ];
  const bytes = Buffer.concat(records.flatMap(([k, v]) => encodeRecord(k, v)));
  for (const step of [1, 7, 8, 9, 4096]) {
    const decoder = new RecordDecoder("part");
    const got: Array<[Buffer, Buffer]> = [];
    for (let at = 0; at < bytes.length; at += step) got.push(...decoder.push(bytes.subarray(at, at + step)));
    decoder.end();
    expect(got).toEqual(records);
  }
});

test("a header claiming a huge value is refused before anything is buffered; a stream ending inside a record is truncated", () => {
  const header = Buffer.alloc(8);
  header.writeUInt32BE(4, 0);
  header.writeUInt32BE(MAX_VALUE_BYTES + 1, 4);
  expect(() => [...new RecordDecoder("joblogs-000001.jlkv").push(header)]).toThrow(/joblogs-000001\.jlkv holds a record header .* corrupt/);
  const decoder = new RecordDecoder("meta-000001.jlkv");
  expect([...decoder.push(Buffer.concat(encodeRecord(Buffer.from("R1"), Buffer.from("{}"))).subarray(0, 10))]).toEqual([]);
  expect(() => decoder.end()).toThrow(/meta-000001\.jlkv ends inside a record \(10 bytes left over\): truncated/);
});

test("a manifest whose totals disagree with its files is refused", () => {
  const file = (name: string, store: string) => ({ name, store, bytes: 10, records: 1, sha256: "0".repeat(64) });
  const manifest = {
    format: "joblog-backup",
    version: 1,
    created_at: "2025-02-12T10:56:45.123Z",
    leader_version: "0.1.0",
    mode: "offline",
    key_ids: [],
    files: [file("joblogs-000001.jlkv", "joblogs"), file("meta-000001.jlkv", "meta")],
    totals: { files: 2, records: 2, bytes: 20 },
  };
  expect(parseManifest(Buffer.from(JSON.stringify(manifest)), "m.json").files).toHaveLength(2);
  const wrong = { ...manifest, totals: { ...manifest.totals, bytes: 21 } };
  expect(() => parseManifest(Buffer.from(JSON.stringify(wrong)), "m.json")).toThrow(BackupCorruptError);
  expect(() => parseManifest(Buffer.from(JSON.stringify({ ...manifest, version: 2 })), "m.json")).toThrow(
    /m\.json is not a joblog backup manifest of version 1: version/,
  );
});
