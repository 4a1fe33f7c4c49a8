import { ConnectError } from "@connectrpc/connect";
import { useCallback, useEffect, useRef, useState } from "react";
import { SearchStop } from "../../../gen/joblog/v1/log_pb.js";
import type { LeaderClient } from "../leader-client.js";

/** A search of the whole log on the leader (the Search RPC), not of the lines the page holds. */

export interface SearchOptions {
  query: string;
  regex: boolean;
  caseSensitive: boolean;
}

export interface Match {
  line: number;
  offset: number;
}

export interface SearchState {
  options: SearchOptions | undefined;
  matches: Match[];
  /** Lines that match, for highlighting. */
  lines: ReadonlySet<number>;
  running: boolean;
  scanned: number;
  length: number;
  stoppedBy: SearchStop;
  error: string | undefined;
}

const IDLE: SearchState = {
  options: undefined,
  matches: [],
  lines: new Set(),
  running: false,
  scanned: 0,
  length: 0,
  stoppedBy: SearchStop.UNSPECIFIED,
  error: undefined,
};

const MAX_MATCHES = 10_000;

export function stopReason(stop: SearchStop): string | undefined {
  if (stop === SearchStop.MAX_MATCHES) return "stopped at the match limit";
  if (stop === SearchStop.MAX_SCAN_BYTES) return "stopped at the leader's scan limit";
  if (stop === SearchStop.MAX_DURATION) return "stopped at the leader's time limit";
  return undefined;
}

/** Runs one search at a time; a new one (or clearing) cancels the previous on the leader too. */
export function useLogSearch(client: LeaderClient, runId: string, task: string) {
  const [state, setState] = useState<SearchState>(IDLE);
  const current = useRef<AbortController | undefined>(undefined);

  const cancel = useCallback(() => {
    current.current?.abort();
    current.current = undefined;
  }, []);

  const clear = useCallback(() => {
    cancel();
    setState(IDLE);
  }, [cancel]);

  const start = useCallback(
    async (options: SearchOptions) => {
      cancel();
      if (options.query === "") {
        setState(IDLE);
        return;
      }
      const controller = new AbortController();
      current.current = controller;
      const matches: Match[] = [];
      const lines = new Set<number>();
      setState({ ...IDLE, options, running: true });
      try {
        const responses = client.search(
          { runId, task, query: options.query, regex: options.regex, caseSensitive: options.caseSensitive, maxMatches: MAX_MATCHES },
          { signal: controller.signal },
        );
        for await (const r of responses) {
          for (const m of r.matches) {
            matches.push({ line: Number(m.lineNumber), offset: Number(m.offset) });
            lines.add(Number(m.lineNumber));
          }
          setState({
            options,
            matches: [...matches],
            lines: new Set(lines),
            running: !r.done,
            scanned: Number(r.scannedOffset),
            length: Number(r.length),
            stoppedBy: r.stoppedBy,
            error: undefined,
          });
        }
      } catch (err) {
        if (controller.signal.aborted) return;
        setState((s) => ({ ...s, running: false, error: err instanceof ConnectError ? err.rawMessage : String(err) }));
      } finally {
        if (current.current === controller) current.current = undefined;
      }
    },
    [client, runId, task, cancel],
  );

  useEffect(() => cancel, [cancel]);
  return { state, start, clear };
}
