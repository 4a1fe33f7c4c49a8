import { useVirtualizer } from "@tanstack/react-virtual";
import { useCallback, useEffect, useLayoutEffect, useMemo, useRef, useState, useSyncExternalStore } from "react";
import { formatCount } from "../format.js";
import type { LeaderClient } from "../leader-client.js";
import { runPath } from "../router.js";
import { type DownloadFormat, downloadLog } from "./log-download.js";
import { LogModel, type LogRecord, type LogStatus } from "./log-model.js";
import { stopReason, useLogSearch } from "./log-search.js";
import { TerminalLine } from "./terminal-line.js";

/**
 * A task log (or the run log, or server events) as a terminal would show it:
 * virtualized (the DOM holds the visible rows and a few more, whatever the
 * log's size), opened at its end, following new lines while Live and the
 * reader is at the bottom, with line links, timestamps, search over the whole
 * log and downloads.
 */

/** Every row is one text line of this height, so nothing moves when lines arrive. */
export const ROW_HEIGHT = 20;

const STATUS_TEXT: Record<LogStatus, string> = {
  opening: "Opening…",
  live: "Live",
  paused: "Paused",
  reconnecting: "Reconnecting…",
  complete: "Complete",
  failed: "Failed",
};

function lineFromHash(hash: string): number | undefined {
  const m = /^#L(\d+)$/.exec(hash);
  return m ? Number(m[1]) : undefined;
}

function isTyping(target: EventTarget | null): boolean {
  return target instanceof HTMLElement && (target.isContentEditable || ["INPUT", "TEXTAREA", "SELECT"].includes(target.tagName));
}

function Row({ n, record, timestamps, page }: { n: number; record: LogRecord | undefined; timestamps: boolean; page: string }) {
  return (
    <>
      <a className="ln" href={`${page}#L${n}`} aria-label={`Line ${n}`} tabIndex={-1}>
        {n}
      </a>
      {timestamps && (
        <span className="ts" title={record?.ts}>
          {record ? record.ts.slice(11, 23) : ""}
        </span>
      )}
      <span className="text">{record ? <TerminalLine line={record.line} /> : "…"}</span>
    </>
  );
}

export interface LogViewProps {
  client: LeaderClient;
  runId: string;
  task: string;
  /** Label for the region, e.g. "Log of build". */
  label: string;
  /** Follow `#L123` in the address (the page's main log does; a side panel does not). */
  linkable?: boolean;
  className?: string;
}

export function LogView({ client, runId, task, label, linkable = false, className }: LogViewProps) {
  const model = useMemo(() => new LogModel(client, runId, task), [client, runId, task]);
  useSyncExternalStore(model.subscribe, model.getVersion);
  useEffect(() => {
    void model.open();
    return () => model.dispose();
  }, [model]);

  const scroller = useRef<HTMLDivElement>(null);
  const searchInput = useRef<HTMLInputElement>(null);
  const [following, setFollowing] = useState(true);
  const [timestamps, setTimestamps] = useState(() => localStorage.getItem("joblog.timestamps") === "1");
  const [selected, setSelected] = useState<number | undefined>(() => (linkable ? lineFromHash(location.hash) : undefined));
  const [query, setQuery] = useState("");
  const [regex, setRegex] = useState(false);
  const [caseSensitive, setCaseSensitive] = useState(false);
  const [matchIndex, setMatchIndex] = useState(-1);
  const [downloading, setDownloading] = useState<DownloadFormat | undefined>();
  const search = useLogSearch(client, runId, task);

  const total = model.total;
  const virtualizer = useVirtualizer({
    count: total,
    getScrollElement: () => scroller.current,
    estimateSize: () => ROW_HEIGHT,
    overscan: 30,
  });
  const items = virtualizer.getVirtualItems();
  const first = items[0]?.index;
  const last = items.at(-1)?.index;

  useEffect(() => {
    if (first !== undefined && last !== undefined) model.want(first + 1, last + 1);
  }, [model, first, last]);

  // Following: keep the last line in view as lines arrive. Rows have one height, so the end is known exactly.
  useLayoutEffect(() => {
    const el = scroller.current;
    if (following && el && total > 0) el.scrollTop = el.scrollHeight;
  }, [following, total]);

  const jumpTo = useCallback(
    (line: number, offset?: number) => {
      setFollowing(false);
      setSelected(line);
      if (offset !== undefined) model.anchor(line, offset);
      virtualizer.scrollToIndex(line - 1, { align: "center" });
    },
    [model, virtualizer],
  );

  // A `#L123` link: on opening the page (once the log is open) and whenever the hash changes.
  const opened = model.status !== "opening";
  useEffect(() => {
    if (!linkable || !opened) return;
    const go = () => {
      const line = lineFromHash(location.hash);
      if (line !== undefined && line >= 1 && line <= model.total) jumpTo(line);
    };
    go();
    window.addEventListener("hashchange", go);
    return () => window.removeEventListener("hashchange", go);
  }, [linkable, opened, model, jumpTo]);

  const onScroll = () => {
    const el = scroller.current;
    if (!el) return;
    const atBottom = el.scrollHeight - el.scrollTop - el.clientHeight < ROW_HEIGHT;
    if (atBottom !== following) setFollowing(atBottom);
  };

  const goToMatch = (index: number) => {
    const matches = search.state.matches;
    if (matches.length === 0) return;
    const i = ((index % matches.length) + matches.length) % matches.length;
    setMatchIndex(i);
    const m = matches[i];
    if (m) jumpTo(m.line, m.offset);
  };

  // The first match is shown as soon as it arrives.
  const firstMatch = search.state.matches[0];
  useEffect(() => {
    if (firstMatch && matchIndex < 0) {
      setMatchIndex(0);
      jumpTo(firstMatch.line, firstMatch.offset);
    }
  }, [firstMatch, matchIndex, jumpTo]);

  const runSearch = () => {
    setMatchIndex(-1);
    void search.start({ query, regex, caseSensitive });
  };

  const onSearchKey = (event: React.KeyboardEvent<HTMLInputElement>) => {
    if (event.key === "Enter") {
      event.preventDefault();
      const same =
        search.state.options?.query === query &&
        search.state.options.regex === regex &&
        search.state.options.caseSensitive === caseSensitive;
      if (same && search.state.matches.length > 0) goToMatch(matchIndex + (event.shiftKey ? -1 : 1));
      else runSearch();
    } else if (event.key === "Escape") {
      setQuery("");
      search.clear();
      setMatchIndex(-1);
      scroller.current?.focus();
    }
  };

  const toggleLive = () => model.setLive(!model.isLive());
  const toggleTimestamps = () => {
    setTimestamps((t) => {
      localStorage.setItem("joblog.timestamps", t ? "0" : "1");
      return !t;
    });
  };
  const follow = () => {
    setFollowing(true);
    const el = scroller.current;
    if (el) el.scrollTop = el.scrollHeight;
  };

  const onKeyDown = (event: React.KeyboardEvent<HTMLDivElement>) => {
    if (isTyping(event.target) || event.ctrlKey || event.metaKey || event.altKey) return;
    let action: (() => void) | undefined;
    switch (event.key) {
      case "/":
        action = () => searchInput.current?.focus();
        break;
      case "n":
        action = () => goToMatch(matchIndex + 1);
        break;
      case "N":
        action = () => goToMatch(matchIndex - 1);
        break;
      case "p":
        action = toggleLive;
        break;
      case "t":
        action = toggleTimestamps;
        break;
      case "f":
      case "G":
        action = follow;
        break;
    }
    if (action) {
      event.preventDefault();
      action();
    }
  };

  const download = async (format: DownloadFormat) => {
    setDownloading(format);
    try {
      await downloadLog(client, runId, task, format);
    } finally {
      setDownloading(undefined);
    }
  };

  const s = search.state;
  const currentMatchLine = s.matches[matchIndex]?.line;
  const live = model.isLive();
  return (
    <section className={`log-view ${className ?? ""}`} aria-label={label} onKeyDown={onKeyDown}>
      <div className="log-toolbar">
        <button
          type="button"
          className={`live-toggle ${live ? "on" : "off"}`}
          aria-pressed={live}
          onClick={toggleLive}
          title="Live: show new lines as they arrive; Paused: keep the view still (p)"
          disabled={model.status === "complete" || model.status === "failed"}
        >
          {live ? "❚❚ Pause" : "▶ Live"}
        </button>
        <button type="button" aria-pressed={following} onClick={follow} title="Scroll to the end and follow new lines (f)">
          ⤓ Follow
        </button>
        <label className="check" title="Show timestamps (t)">
          <input type="checkbox" checked={timestamps} onChange={toggleTimestamps} /> Timestamps
        </label>
        <span className="spacer" />
        <search className="log-search">
          <input
            ref={searchInput}
            type="search"
            aria-label="Search the whole log"
            placeholder="Search whole log (/)"
            value={query}
            onChange={(e) => setQuery(e.target.value)}
            onKeyDown={onSearchKey}
            maxLength={1024}
          />
          <label className="check" title="Match case">
            <input type="checkbox" checked={caseSensitive} onChange={(e) => setCaseSensitive(e.target.checked)} /> Aa
          </label>
          <label className="check" title="Regular expression (RE2 syntax)">
            <input type="checkbox" checked={regex} onChange={(e) => setRegex(e.target.checked)} /> .*
          </label>
          <button
            type="button"
            onClick={() => goToMatch(matchIndex - 1)}
            disabled={s.matches.length === 0}
            title="Previous match (N, Shift+Enter)"
          >
            ↑
          </button>
          <button type="button" onClick={() => goToMatch(matchIndex + 1)} disabled={s.matches.length === 0} title="Next match (n, Enter)">
            ↓
          </button>
          <output className="search-status" aria-live="polite">
            {s.error
              ? s.error
              : s.options
                ? `${s.matches.length === 0 ? "no" : `${Math.max(matchIndex + 1, 0)}/${formatCount(s.matches.length)}`} match${s.matches.length === 1 ? "" : "es"}${
                    s.running ? ` · searching ${s.length > 0 ? Math.floor((s.scanned / s.length) * 100) : 0}%` : ""
                  }${stopReason(s.stoppedBy) ? ` · ${stopReason(s.stoppedBy)}` : ""}`
                : ""}
          </output>
        </search>
        <span className="spacer" />
        <button
          type="button"
          onClick={() => void download("jsonl")}
          disabled={downloading !== undefined}
          title="Download the raw JSONL records"
        >
          ⤓ JSONL
        </button>
        <button
          type="button"
          onClick={() => void download("text")}
          disabled={downloading !== undefined}
          title="Download the lines as plain text"
        >
          ⤓ Text
        </button>
      </div>
      {/* biome-ignore lint/a11y/noNoninteractiveTabindex: the scrolling log takes focus so arrows and Page keys scroll it */}
      <div className="log-scroller" ref={scroller} onScroll={onScroll} tabIndex={0} data-testid="log-scroller">
        <div className={`log-lines ${timestamps ? "with-ts" : ""}`} style={{ height: virtualizer.getTotalSize() }}>
          {items.map((item) => {
            const n = item.index + 1;
            const record = model.record(n);
            return (
              <div
                key={item.key}
                className={`log-line ${record?.stream === "stderr" ? "stderr" : ""} ${record ? "" : "pending"} ${n === selected ? "selected" : ""} ${
                  s.lines.has(n) ? "match" : ""
                } ${n === currentMatchLine ? "current-match" : ""}`}
                data-line={n}
                data-stream={record?.stream}
                style={{ transform: `translateY(${item.start}px)` }}
              >
                <Row n={n} record={record} timestamps={timestamps} page={linkable ? "" : runPath(runId, task)} />
              </div>
            );
          })}
        </div>
      </div>
      <div className="log-status">
        <span data-testid="log-state" className={`state ${model.status}`}>
          {STATUS_TEXT[model.status]}
        </span>
        <span data-testid="line-count">{formatCount(total)} lines</span>
        {!following && total > 0 && (
          <button type="button" className="link" onClick={follow}>
            Jump to end
          </button>
        )}
        {model.error && <span className="error">{model.error}</span>}
      </div>
    </section>
  );
}
