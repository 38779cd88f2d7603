import { useCallback, useEffect, useRef, useState } from 'react';

export interface Loaded<T> {
  data: T | undefined;
  error: Error | undefined;
  loading: boolean;
  reload(): void;
}

/**
 * Loads `fetcher()` when `key` changes; `pollMs` (when set, and while it returns a number) re-runs
 * it in the background without clearing what is shown.
 */
export function useApi<T>(
  key: string | null,
  fetcher: () => Promise<T>,
  pollMs?: (data: T) => number | undefined,
): Loaded<T> {
  const [state, setState] = useState<{ key: string | null; data?: T; error?: Error; loading: boolean }>({
    key,
    loading: key !== null,
  });
  const [tick, setTick] = useState(0);
  const fetcherRef = useRef(fetcher);
  fetcherRef.current = fetcher;
  const pollRef = useRef(pollMs);
  pollRef.current = pollMs;

  // biome-ignore lint/correctness/useExhaustiveDependencies: tick forces a reload
  useEffect(() => {
    if (key === null) return;
    let cancelled = false;
    let timer: ReturnType<typeof setTimeout> | undefined;
    const load = () => {
      fetcherRef.current().then(
        (data) => {
          if (cancelled) return;
          setState({ key, data, loading: false });
          const next = pollRef.current?.(data);
          if (next !== undefined) timer = setTimeout(load, next);
        },
        (error: Error) => !cancelled && setState((s) => ({ ...s, key, error, loading: false })),
      );
    };
    setState((s) => ({ ...s, key, error: undefined, loading: true }));
    load();
    return () => {
      cancelled = true;
      if (timer) clearTimeout(timer);
    };
  }, [key, tick]);

  const reload = useCallback(() => setTick((t) => t + 1), []);
  // What was shown stays while a new key loads (components are keyed by route, so it is the same thing).
  const same = state.key === key;
  return { data: state.data, error: same ? state.error : undefined, loading: !same || state.loading, reload };
}

/** The current hash route, split: `#/runs/abc` → ['runs', 'abc']. */
function readHashRoute(): string[] {
  return window.location.hash.replace(/^#\/?/, '').split('?')[0]!.split('/').filter(Boolean).map(decodeURIComponent);
}

export function useHashRoute(): string[] {
  const [route, setRoute] = useState(readHashRoute);
  useEffect(() => {
    const on = () => setRoute(readHashRoute());
    window.addEventListener('hashchange', on);
    return () => window.removeEventListener('hashchange', on);
  }, []);
  return route;
}
