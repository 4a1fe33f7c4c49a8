/** Where a leader is: `http://host:port`, `https://host:port` or a bare `host:port`. */
export interface LeaderAddress {
  /** grpc-js target, `host:port`. */
  target: string;
  tls: boolean;
  /** The URL form, for HTTP clients. */
  url: string;
}

export const DEFAULT_LEADER = "http://127.0.0.1:8080";

export function parseLeaderUrl(input: string): LeaderAddress {
  const text = input.includes("://") ? input : `http://${input}`;
  let url: URL;
  try {
    url = new URL(text);
  } catch {
    throw new Error(`leader address ${JSON.stringify(input)} is not a URL like http://127.0.0.1:8080`);
  }
  if (url.protocol !== "http:" && url.protocol !== "https:") {
    throw new Error(`leader address ${JSON.stringify(input)} must use http:// or https://`);
  }
  const tls = url.protocol === "https:";
  const port = url.port || (tls ? "443" : "80");
  return { target: `${url.hostname}:${port}`, tls, url: `${url.protocol}//${url.hostname}:${port}` };
}
