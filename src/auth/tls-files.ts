import { readFile } from "node:fs/promises";
import type { ListenerTls } from "../api/listener.js";
import type { TlsConfig } from "../config/config-schema.js";

/** Reads the PEM files `server.tls` names; an unreadable one is an error naming its key and path. */
export async function readTlsFiles(tls: TlsConfig): Promise<ListenerTls> {
  const read = async (key: string, path: string) => {
    try {
      return await readFile(path);
    } catch (err) {
      throw new Error(`server.tls.${key}: cannot read ${path}: ${(err as NodeJS.ErrnoException).code ?? String(err)}`);
    }
  };
  // One after the other, so the first key in the config that is wrong is the one named.
  const cert = await read("cert_file", tls.cert_file);
  const key = await read("key_file", tls.key_file);
  const ca = tls.client_ca_file === undefined ? undefined : await read("client_ca_file", tls.client_ca_file);
  return { cert, key, ...(ca && { ca }) };
}
