/**
 * `{ ...a, ...b }` for records built on every step's hot path.
 *
 * Why not the spread: in Node 20's V8, an object literal that *begins* with a spread and then gains
 * more properties (`{ ...a, x }`, `{ ...a, ...b }`, or `{ ...a }` assigned to later) gets a hidden
 * class of its own, every time. Each is garbage in the old generation until the next full GC, and
 * keeps the young objects it points to alive through every scavenge, so a run's heap grew with its
 * number of steps (bench/cli.ts, "peak RSS"). Copying key by key onto a plain `{}` reuses one
 * hidden class. Same result as the spread: own enumerable string keys, later parts win, and a key
 * named `__proto__` stays an ordinary property.
 */
export function mergeRecords<T extends object>(...parts: ReadonlyArray<Partial<T> | undefined>): T {
  const merged: Record<string, unknown> = {};
  for (const part of parts) {
    if (part === undefined) continue;
    for (const key of Object.keys(part)) {
      const value = (part as Record<string, unknown>)[key];
      if (key === '__proto__')
        Object.defineProperty(merged, key, { value, writable: true, enumerable: true, configurable: true });
      else merged[key] = value;
    }
  }
  return merged as T;
}
