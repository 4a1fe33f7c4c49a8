import { createClient } from "@connectrpc/connect";
import { createConnectTransport } from "@connectrpc/connect-web";
import { LogService } from "../../gen/joblog/v1/log_pb.js";

/**
 * The UI talks to the leader like every other client: LogService over
 * Connect, here from the page's own origin. Binary protobuf, because logs
 * travel as bytes and JSON would base64 them.
 */
export const leader = createClient(LogService, createConnectTransport({ baseUrl: window.location.origin, useBinaryFormat: true }));

export type LeaderClient = typeof leader;
