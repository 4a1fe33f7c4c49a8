import { useEffect, useState } from "react";

/**
 * The UI's three places, as paths the leader answers with the UI itself:
 * `/` (runs), `/runs/{run}` (a run and its run log), `/runs/{run}/tasks/{task}`.
 * The hash is left to the log view (`#L123`).
 */
export type Route =
  | { page: "runs"; query: URLSearchParams }
  | { page: "run"; runId: string; task: string | undefined }
  | { page: "missing"; path: string };

export function parseRoute(location: Location): Route {
  const parts = location.pathname
    .split("/")
    .filter((p) => p !== "")
    .map(decodeURIComponent);
  if (parts.length === 0) return { page: "runs", query: new URLSearchParams(location.search) };
  if (parts[0] === "runs" && parts.length === 2) return { page: "run", runId: parts[1] as string, task: undefined };
  if (parts[0] === "runs" && parts.length === 4 && parts[2] === "tasks") {
    return { page: "run", runId: parts[1] as string, task: parts[3] as string };
  }
  return { page: "missing", path: location.pathname };
}

export function runPath(runId: string, task?: string): string {
  const base = `/runs/${encodeURIComponent(runId)}`;
  return task === undefined ? base : `${base}/tasks/${encodeURIComponent(task)}`;
}

const NAVIGATED = "joblog:navigate";

export function navigate(href: string, replace = false): void {
  if (replace) history.replaceState(null, "", href);
  else history.pushState(null, "", href);
  window.dispatchEvent(new Event(NAVIGATED));
}

/** The current route, following links, back/forward and replaced query strings. */
export function useRoute(): Route {
  const [route, setRoute] = useState(() => parseRoute(window.location));
  useEffect(() => {
    const update = () => setRoute(parseRoute(window.location));
    window.addEventListener("popstate", update);
    window.addEventListener(NAVIGATED, update);
    return () => {
      window.removeEventListener("popstate", update);
      window.removeEventListener(NAVIGATED, update);
    };
  }, []);
  return route;
}

/** Click handler for in-app links: plain clicks stay in the page, modified clicks open tabs as usual. */
export function followLink(event: React.MouseEvent<HTMLAnchorElement>): void {
  if (event.button !== 0 || event.metaKey || event.ctrlKey || event.shiftKey || event.altKey) return;
  event.preventDefault();
  navigate(event.currentTarget.getAttribute("href") ?? "/");
}
