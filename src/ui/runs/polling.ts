import { ConnectError } from "@connectrpc/connect";
import { useEffect, useRef, useState } from "react";

/**
 * Keeps a value fresh by calling `load` every `intervalMs` while `active`
 * (the list of runs and a running run's tasks: ListRuns and GetRun are
 * unary). A failed call shows its error and is tried again at the next tick.
 */
export function usePolling<T>(
  load: (signal: AbortSignal) => Promise<T>,
  /** Starts over (a new first call) when it changes: what `load` asks for. */
  key: string,
  intervalMs: number,
  active: (value: T | undefined) => boolean = () => true,
): { value: T | undefined; error: string | undefined } {
  const [value, setValue] = useState<T | undefined>();
  const [error, setError] = useState<string | undefined>();
  // The latest callbacks, without restarting the polling on every render.
  const loadRef = useRef(load);
  const activeRef = useRef(active);
  loadRef.current = load;
  activeRef.current = active;
  // biome-ignore lint/correctness/useExhaustiveDependencies: `key` is what `load` asks for; a new one starts the polling over
  useEffect(() => {
    const controller = new AbortController();
    let timer: ReturnType<typeof setTimeout> | undefined;
    const tick = async () => {
      let latest: T | undefined;
      try {
        latest = await loadRef.current(controller.signal);
        setValue(latest);
        setError(undefined);
      } catch (err) {
        if (controller.signal.aborted) return;
        setError(err instanceof ConnectError ? err.rawMessage : String(err));
      }
      if (!controller.signal.aborted && activeRef.current(latest)) timer = setTimeout(tick, intervalMs);
    };
    void tick();
    return () => {
      controller.abort();
      clearTimeout(timer);
    };
  }, [key, intervalMs]);
  return { value, error };
}
