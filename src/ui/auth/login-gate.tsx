import { type FormEvent, type ReactNode, useEffect, useState } from "react";
import { clearSessionToken, onAuthRequired, sessionToken, storeSessionToken } from "./session-token.js";

/**
 * Shows the page, or a sign-in form once the leader answers UNAUTHENTICATED
 * (a leader without tokens never does, so it never shows). Signing in or out
 * remounts the page, so every view asks again with the new token.
 */
export function LoginGate({ children }: { children: (session: { signedIn: boolean; signOut(): void }) => ReactNode }) {
  const [needed, setNeeded] = useState(false);
  const [rejected, setRejected] = useState(false);
  const [generation, setGeneration] = useState(0);
  const [signedIn, setSignedIn] = useState(() => sessionToken() !== undefined);

  useEffect(
    () =>
      onAuthRequired(() => {
        // A stored token the leader refuses (revoked, from another leader) is dropped.
        if (sessionToken() !== undefined) {
          clearSessionToken();
          setSignedIn(false);
          setRejected(true);
        }
        setNeeded(true);
      }),
    [],
  );

  const signIn = (token: string) => {
    storeSessionToken(token);
    setSignedIn(true);
    setRejected(false);
    setNeeded(false);
    setGeneration((g) => g + 1);
  };
  const signOut = () => {
    clearSessionToken();
    setSignedIn(false);
    setGeneration((g) => g + 1);
  };

  if (needed) return <LoginForm rejected={rejected} onSubmit={signIn} />;
  return <div key={generation}>{children({ signedIn, signOut })}</div>;
}

function LoginForm({ rejected, onSubmit }: { rejected: boolean; onSubmit(token: string): void }) {
  const [token, setToken] = useState("");
  const submit = (e: FormEvent) => {
    // Never a GET of the form: the token would land in the address bar and the history.
    e.preventDefault();
    const value = token.trim();
    if (value) onSubmit(value);
  };
  return (
    <main className="login">
      <form method="post" onSubmit={submit} aria-labelledby="login-title">
        <h1 id="login-title">Sign in to joblog</h1>
        <p>This leader needs a reader token (ask its operator; `joblog tokens create --role reader` makes one).</p>
        {rejected && (
          <p className="error" role="alert">
            The leader did not accept that token.
          </p>
        )}
        <label>
          Reader token
          <input type="password" autoComplete="off" spellCheck={false} value={token} onChange={(e) => setToken(e.target.value)} />
        </label>
        <button type="submit">Sign in</button>
      </form>
    </main>
  );
}
