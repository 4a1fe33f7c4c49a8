/**
 * The reader token of this browser tab. Kept in sessionStorage: it lives as
 * long as the tab, is not shared with other tabs, and never goes into a URL,
 * a cookie (which would ride along on every request, CSRF included) or a log.
 */

const KEY = "joblog.token";

export function sessionToken(): string | undefined {
  try {
    return sessionStorage.getItem(KEY) ?? undefined;
  } catch {
    return undefined; // storage disabled: every call goes without a token
  }
}

export function storeSessionToken(token: string): void {
  sessionStorage.setItem(KEY, token);
}

export function clearSessionToken(): void {
  sessionStorage.removeItem(KEY);
}

type Listener = () => void;
const listeners = new Set<Listener>();

/** Told whenever the leader answers UNAUTHENTICATED. */
export function onAuthRequired(listener: Listener): () => void {
  listeners.add(listener);
  return () => listeners.delete(listener);
}

export function authRequired(): void {
  for (const listener of listeners) listener();
}
