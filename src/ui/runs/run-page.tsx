import { useState } from "react";
import { RunState, type Task, TaskState } from "../../../gen/joblog/v1/log_pb.js";
import { elapsed, formatBytes, formatCount, formatTime, msOf } from "../format.js";
import { leader } from "../leader-client.js";
import { LogView } from "../log/log-view.js";
import { followLink, runPath } from "../router.js";
import { usePolling } from "./polling.js";
import { StateBadge } from "./state-badge.js";

const REFRESH_MS = 1500;
const RUN_LOG = "_run";
const SERVER_EVENTS = "_server";

function exitText(task: Task): string {
  if (task.state !== TaskState.COMPLETED) return "—";
  return task.signal ? `${task.exitCode} (${task.signal})` : String(task.exitCode);
}

/**
 * A run: its state, its tasks (state, result, exit code, duration, size), the
 * Server Events panel, and one log — the run log by default, or the task
 * picked. Refreshed while the run is running.
 */
export function RunPage({ runId, task }: { runId: string; task: string | undefined }) {
  const [now, setNow] = useState(Date.now());
  const { value: view, error } = usePolling(
    async (signal) => {
      setNow(Date.now());
      return leader.getRun({ runId }, { signal });
    },
    runId,
    REFRESH_MS,
    // One more refresh after completion picks up the final sizes.
    (v) => v === undefined || v.run?.state !== RunState.COMPLETED,
  );
  const selected = task ?? RUN_LOG;
  const run = view?.run;
  const events = Number(view?.serverEvents?.recordCount ?? 0n);

  if (!view) {
    return error ? (
      <p className="error" role="alert">
        {error}
      </p>
    ) : (
      <p className="empty">Loading run {runId}…</p>
    );
  }
  const logTitle = selected === RUN_LOG ? "Run log" : selected === SERVER_EVENTS ? "Server events" : `Task ${selected}`;
  return (
    <section className="run-page">
      <div className="run-head">
        <h1>
          Run <span className="mono">{runId}</span>
        </h1>
        {run && <StateBadge state={run.state} result={run.result} />}
        <dl className="facts">
          <dt>Workspace</dt>
          <dd>{run?.workspace}</dd>
          <dt>Workflow</dt>
          <dd>{run?.workflow}</dd>
          <dt>Started (UTC)</dt>
          <dd>{formatTime(msOf(run?.startedAt))}</dd>
          <dt>Duration</dt>
          <dd>{elapsed(run?.startedAt, run?.endedAt, now)}</dd>
        </dl>
      </div>
      {error && (
        <p className="error" role="alert">
          {error}
        </p>
      )}
      <div className="run-body">
        <nav className="tasks" aria-label="Logs of this run">
          <table>
            <thead>
              <tr>
                <th scope="col">Task</th>
                <th scope="col">State</th>
                <th scope="col" className="num">
                  Exit
                </th>
                <th scope="col" className="num">
                  Duration
                </th>
                <th scope="col" className="num">
                  Size
                </th>
              </tr>
            </thead>
            <tbody>
              {view.runLog && <TaskRow runId={runId} task={view.runLog} label="Run log" selected={selected === RUN_LOG} now={now} />}
              {view.tasks.map((t) => (
                <TaskRow key={t.name} runId={runId} task={t} label={t.name} selected={selected === t.name} now={now} />
              ))}
            </tbody>
          </table>
          {view.tasks.length === 0 && <p className="empty">No tasks yet.</p>}
        </nav>
        <section className="log-panel" aria-label={logTitle}>
          <h2>{logTitle}</h2>
          <LogView
            key={`${runId}/${selected}`}
            client={leader}
            runId={runId}
            task={selected}
            label={`Log: ${logTitle}`}
            linkable
            className="main-log"
          />
        </section>
      </div>
      <details className={`server-events ${events > 0 ? "has-events" : ""}`} open={events > 0} data-testid="server-events">
        <summary>
          Server events{" "}
          <span className={`count ${events > 0 ? "nonzero" : ""}`} data-testid="server-events-count">
            {formatCount(events)}
          </span>
        </summary>
        {events > 0 ? (
          <LogView
            key={`${runId}/_server`}
            client={leader}
            runId={runId}
            task={SERVER_EVENTS}
            label="Server events"
            className="events-log"
          />
        ) : (
          <p className="empty">No server events: the leader has met no problem with this run.</p>
        )}
      </details>
    </section>
  );
}

function TaskRow({ runId, task, label, selected, now }: { runId: string; task: Task; label: string; selected: boolean; now: number }) {
  const href = runPath(runId, task.name);
  return (
    <tr className={selected ? "selected" : ""} data-task={task.name}>
      <th scope="row">
        <a href={href} onClick={followLink} aria-current={selected ? "page" : undefined}>
          {label}
        </a>
      </th>
      <td>
        <StateBadge state={task.state} result={task.result} />
      </td>
      <td className="num">{exitText(task)}</td>
      <td className="num">{elapsed(task.startedAt, task.endedAt, now)}</td>
      <td className="num" title={`${formatCount(Number(task.length))} bytes`}>
        {formatBytes(Number(task.length))} · {formatCount(Number(task.recordCount))} lines
      </td>
    </tr>
  );
}
