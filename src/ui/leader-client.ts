import { Code, ConnectError, createClient, type Interceptor } from "@connectrpc/connect";
import { createConnectTransport } from "@connectrpc/connect-web";
import { LogService } from "../../gen/joblog/v1/log_pb.js";
import { authRequired, sessionToken } from "./auth/session-token.js";

/** Sends the tab's token as a header on every call, and asks for one when the leader wants it. */
const bearer: Interceptor = (next) => async (req) => {
  const token = sessionToken();
  if (token) req.header.set("authorization", `Bearer ${token}`);
  try {
    return await next(req);
  } catch (err) {
    if (err instanceof ConnectError && err.code === Code.Unauthenticated) authRequired();
    throw err;
  }
};

/**
 * The UI talks to the leader like every other client: LogService over
 * Connect, here from the page's own origin. Binary protobuf, because logs
 * travel as bytes and JSON would base64 them.
 */
export const leader = createClient(
  LogService,
  createConnectTransport({ baseUrl: window.location.origin, useBinaryFormat: true, interceptors: [bearer] }),
);

export type LeaderClient = typeof leader;
