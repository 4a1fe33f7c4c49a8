import { execFile } from "node:child_process";
import { mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { promisify } from "node:util";

const run = promisify(execFile);

/** PEM files made at run time by openssl (no key is ever committed); `dispose` removes them. */
export interface TestCerts {
  dir: string;
  /** The CA that signed the server's and the client's certificates. */
  caFile: string;
  serverCertFile: string;
  serverKeyFile: string;
  clientCertFile: string;
  clientKeyFile: string;
  /** A client certificate from another CA, which the leader must refuse. */
  rogueCertFile: string;
  rogueKeyFile: string;
  read(file: string): Promise<Buffer>;
  dispose(): Promise<void>;
}

async function openssl(cwd: string, ...args: string[]): Promise<void> {
  await run("openssl", args, { cwd, timeout: 20_000 });
}

async function selfSignedCa(dir: string, name: string): Promise<void> {
  await openssl(
    dir,
    "req",
    "-x509",
    "-newkey",
    "ec",
    "-pkeyopt",
    "ec_paramgen_curve:prime256v1",
    "-nodes",
    "-days",
    "2",
    "-subj",
    `/CN=${name}`,
    "-keyout",
    `${name}.key`,
    "-out",
    `${name}.pem`,
  );
}

async function signed(dir: string, ca: string, name: string, ext: string): Promise<void> {
  await writeFile(join(dir, `${name}.ext`), ext);
  await openssl(
    dir,
    "req",
    "-newkey",
    "ec",
    "-pkeyopt",
    "ec_paramgen_curve:prime256v1",
    "-nodes",
    "-subj",
    `/CN=${name}`,
    "-keyout",
    `${name}.key`,
    "-out",
    `${name}.csr`,
  );
  await openssl(
    dir,
    "x509",
    "-req",
    "-in",
    `${name}.csr`,
    "-CA",
    `${ca}.pem`,
    "-CAkey",
    `${ca}.key`,
    "-CAcreateserial",
    "-days",
    "2",
    "-extfile",
    `${name}.ext`,
    "-out",
    `${name}.pem`,
  );
}

/** A CA, a server certificate for 127.0.0.1 / localhost, a client certificate, and a rogue client certificate. */
export async function makeTestCerts(): Promise<TestCerts> {
  const dir = await mkdtemp(join(tmpdir(), "joblog-certs-"));
  await selfSignedCa(dir, "ca");
  await selfSignedCa(dir, "rogue-ca");
  await signed(dir, "ca", "server", "subjectAltName=IP:127.0.0.1,DNS:localhost\nextendedKeyUsage=serverAuth\n");
  await signed(dir, "ca", "client", "extendedKeyUsage=clientAuth\n");
  await signed(dir, "rogue-ca", "rogue", "extendedKeyUsage=clientAuth\n");
  const at = (file: string) => join(dir, file);
  return {
    dir,
    caFile: at("ca.pem"),
    serverCertFile: at("server.pem"),
    serverKeyFile: at("server.key"),
    clientCertFile: at("client.pem"),
    clientKeyFile: at("client.key"),
    rogueCertFile: at("rogue.pem"),
    rogueKeyFile: at("rogue.key"),
    read: (file) => readFile(file),
    dispose: () => rm(dir, { recursive: true, force: true }),
  };
}
