import { mkdtemp, rm } from "node:fs/promises";
import type { Server } from "node:http";
import type { AddressInfo } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import S3rver from "s3rver";

/** An s3rver on a loopback port with one bucket, in a temporary directory. */
export interface S3Server {
  endpoint: string;
  port: number;
  bucket: string;
  /** Where s3rver keeps objects (one directory per bucket). */
  directory: string;
  close(): Promise<void>;
}

// s3rver's credentials; buckets need at least 3 characters.
export const S3RVER_CREDENTIALS = { access_key_id: "S3RVER", secret_access_key: "S3RVER" } as const;

export async function startS3Server(bucket = "joblog-test"): Promise<S3Server> {
  const directory = await mkdtemp(join(tmpdir(), "joblog-s3rver-"));
  const server = new S3rver({ port: 0, address: "127.0.0.1", silent: true, directory, configureBuckets: [{ name: bucket, configs: [] }] });
  const address = (await server.run()) as AddressInfo;
  return {
    endpoint: `http://127.0.0.1:${address.port}`,
    port: address.port,
    bucket,
    directory,
    async close() {
      const http = (server as unknown as { httpServer?: Server }).httpServer;
      // Keep-alive sockets of SDK clients would hold close() open.
      http?.closeAllConnections();
      await server.close();
      await rm(directory, { recursive: true, force: true });
    },
  };
}
