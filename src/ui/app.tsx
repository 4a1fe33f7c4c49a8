import { followLink, useRoute } from "./router.js";
import { RunPage } from "./runs/run-page.js";
import { RunsPage } from "./runs/runs-page.js";

export function App({ session }: { session?: { signedIn: boolean; signOut(): void } }) {
  const route = useRoute();
  return (
    <>
      <header className="top">
        <a href="/" className="brand" onClick={followLink}>
          joblog
        </a>
        <nav aria-label="Breadcrumb">
          {route.page === "run" && (
            <>
              <a href="/" onClick={followLink}>
                Runs
              </a>{" "}
              / <span>{route.runId}</span>
            </>
          )}
        </nav>
        {session?.signedIn && (
          <button type="button" className="sign-out" onClick={session.signOut}>
            Sign out
          </button>
        )}
      </header>
      <main>
        {route.page === "runs" && <RunsPage query={route.query} />}
        {route.page === "run" && <RunPage key={route.runId} runId={route.runId} task={route.task} />}
        {route.page === "missing" && (
          <p className="empty">
            Nothing here ({route.path}).{" "}
            <a href="/" onClick={followLink}>
              Back to the runs
            </a>
          </p>
        )}
      </main>
    </>
  );
}
