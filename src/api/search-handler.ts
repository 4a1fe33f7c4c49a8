import { create } from "@bufbuild/protobuf";
import {
  type LocateLineResponse,
  LocateLineResponseSchema,
  type SearchRequest,
  type SearchResponse,
  SearchResponseSchema,
  SearchStop,
} from "../../gen/joblog/v1/log_pb.js";
import type { SearchConfig } from "../config/config-schema.js";
import { invalidArgument, unavailable } from "../errors/domain-error.js";
import type { LogReader } from "../read/log-reader.js";
import { locateLine, type SearchLimits, type SearchStopReason, searchLog } from "../read/log-search.js";

export interface SearchDeps {
  reader: LogReader;
  search: SearchConfig;
  /** Bytes per read while scanning: the leader's Read limit. */
  readBytes: number;
  /** Aborted when the leader begins to shut down. */
  shutdown: AbortSignal;
}

const STOPS: Record<SearchStopReason, SearchStop> = {
  max_matches: SearchStop.MAX_MATCHES,
  max_scan_bytes: SearchStop.MAX_SCAN_BYTES,
  max_duration: SearchStop.MAX_DURATION,
};

function limitsOf(deps: SearchDeps, requestedMatches: number): SearchLimits {
  const cap = deps.search.max_matches;
  return {
    maxMatches: requestedMatches === 0 ? cap : Math.min(requestedMatches, cap),
    maxScanBytes: deps.search.max_scan_bytes,
    maxDurationMs: deps.search.max_duration_ms,
    readBytes: deps.readBytes,
  };
}

/** The Search RPC over validated identifiers: matches stream as the scan finds them. */
export async function* searchResponses(
  deps: SearchDeps,
  run: string,
  task: string,
  req: SearchRequest,
  signal: AbortSignal,
): AsyncGenerator<SearchResponse> {
  const stop = AbortSignal.any([signal, deps.shutdown]);
  const progress = searchLog(
    deps.reader,
    run,
    task,
    { query: req.query, regex: req.regex, caseSensitive: req.caseSensitive },
    limitsOf(deps, req.maxMatches),
    stop,
  );
  for await (const p of progress) {
    yield create(SearchResponseSchema, {
      matches: p.matches.map((m) => ({ offset: BigInt(m.offset), lineNumber: BigInt(m.lineNumber), text: m.text })),
      scannedOffset: BigInt(p.scannedOffset),
      length: BigInt(p.length),
      done: p.done,
      stoppedBy: p.stoppedBy ? STOPS[p.stoppedBy] : SearchStop.UNSPECIFIED,
    });
  }
  if (deps.shutdown.aborted) throw unavailable("the leader is shutting down; search again later");
}

/** The LocateLine RPC over validated identifiers. */
export async function locateLineResponse(
  deps: SearchDeps,
  run: string,
  task: string,
  lineNumber: bigint,
  signal: AbortSignal,
): Promise<LocateLineResponse> {
  if (lineNumber > BigInt(Number.MAX_SAFE_INTEGER)) throw invalidArgument("line_number is too large");
  const limits = limitsOf(deps, 0);
  const offset = await locateLine(deps.reader, run, task, Number(lineNumber), limits, AbortSignal.any([signal, deps.shutdown]));
  return create(LocateLineResponseSchema, { offset: BigInt(offset), lineNumber });
}
