import { useEffect, useState } from "react";
import { type Run, RunState } from "../../../gen/joblog/v1/log_pb.js";
import { elapsed, formatTime, msOf } from "../format.js";
import { leader } from "../leader-client.js";
import { followLink, navigate, runPath } from "../router.js";
import { usePolling } from "./polling.js";
import { StateBadge } from "./state-badge.js";

const REFRESH_MS = 2000;
const PAGE_SIZE = 50;

const STATES: Record<string, RunState> = { "": RunState.UNSPECIFIED, running: RunState.RUNNING, completed: RunState.COMPLETED };

/** Runs, newest first, filtered by workspace, workflow and state (kept in the address); states refresh every 2 s. */
export function RunsPage({ query }: { query: URLSearchParams }) {
  const workspace = query.get("workspace") ?? "";
  const workflow = query.get("workflow") ?? "";
  const state = query.get("state") ?? "";
  const [pages, setPages] = useState(1);
  const [now, setNow] = useState(Date.now());

  const setFilter = (key: string, value: string) => {
    const next = new URLSearchParams(query);
    if (value === "") next.delete(key);
    else next.set(key, value);
    setPages(1);
    const search = next.toString();
    navigate(search ? `/?${search}` : "/", true);
  };

  // Refreshes as many runs as are shown, so "load more" pages stay live too.
  const { value, error } = usePolling(
    async (signal) => {
      setNow(Date.now());
      return leader.listRuns(
        { workspace, workflow, state: STATES[state] ?? RunState.UNSPECIFIED, pageSize: PAGE_SIZE * pages },
        { signal },
      );
    },
    JSON.stringify([workspace, workflow, state, pages]),
    REFRESH_MS,
  );
  const runs: Run[] = value?.runs ?? [];

  return (
    <section className="runs-page">
      <h1>Runs</h1>
      <form className="filters" onSubmit={(e) => e.preventDefault()} aria-label="Filter runs">
        <FilterInput label="Workspace" value={workspace} onCommit={(v) => setFilter("workspace", v)} />
        <FilterInput label="Workflow" value={workflow} onCommit={(v) => setFilter("workflow", v)} />
        <label>
          State{" "}
          <select value={state} onChange={(e) => setFilter("state", e.target.value)}>
            <option value="">any</option>
            <option value="running">running</option>
            <option value="completed">completed</option>
          </select>
        </label>
      </form>
      {error && (
        <p className="error" role="alert">
          {error}
        </p>
      )}
      <table className="runs">
        <thead>
          <tr>
            <th scope="col">Run</th>
            <th scope="col">Workspace</th>
            <th scope="col">Workflow</th>
            <th scope="col">State</th>
            <th scope="col">Started (UTC)</th>
            <th scope="col">Duration</th>
            <th scope="col" className="num">
              Tasks
            </th>
          </tr>
        </thead>
        <tbody>
          {runs.map((run) => (
            <tr key={run.runId} data-run={run.runId}>
              <td>
                <a href={runPath(run.runId)} onClick={followLink}>
                  {run.runId}
                </a>
              </td>
              <td>{run.workspace}</td>
              <td>{run.workflow}</td>
              <td>
                <StateBadge state={run.state} result={run.result} />
              </td>
              <td className="time">{formatTime(msOf(run.startedAt))}</td>
              <td className="num">{elapsed(run.startedAt, run.endedAt, now)}</td>
              <td className="num">{run.taskCount}</td>
            </tr>
          ))}
        </tbody>
      </table>
      {value && runs.length === 0 && <p className="empty">No runs{workspace || workflow || state ? " match these filters" : " yet"}.</p>}
      {value?.nextPageToken && (
        <button type="button" onClick={() => setPages((p) => p + 1)}>
          Load more
        </button>
      )}
    </section>
  );
}

/** A text filter applied on Enter or when focus leaves, not on every key. */
function FilterInput({ label, value, onCommit }: { label: string; value: string; onCommit: (value: string) => void }) {
  const [draft, setDraft] = useState(value);
  useEffect(() => setDraft(value), [value]);
  const commit = () => {
    if (draft.trim() !== value) onCommit(draft.trim());
  };
  return (
    <label>
      {label}{" "}
      <input
        type="text"
        value={draft}
        placeholder="any"
        onChange={(e) => setDraft(e.target.value)}
        onBlur={commit}
        onKeyDown={(e) => {
          if (e.key === "Enter") commit();
        }}
      />
    </label>
  );
}
