/**
 * Holds V8's heap at its size while Stackline's own bookkeeping runs, and gives V8 its usual say
 * while a step's code runs.
 *
 * Why: V8 sizes its heap by heuristics that count a process's whole history, so a process that does
 * the same small work for longer — a run's per-step writes, hashes and records — ends up with a
 * larger heap although what it keeps does not grow:
 * - it doubles the young generation (up to 16 MiB a semi-space) each time as many bytes have
 *   survived scavenges, counted in all since its last growth, as it holds;
 * - after a full collection it lets the old generation grow to up to four times what survived
 *   before collecting again, so garbage promoted by many small steps piles up for a long while.
 * Measured on `stackline run` with `--json`, both together took a 1,000-step run's peak 12 MiB and
 * a 10,000-step one's about 33 MiB above the same runs held, though their live data is the same;
 * the wall time of a 1,000-step run moved by less than the noise.
 *
 * A step's own code is the user's: one that allocates heavily gets V8's default sizing, whose
 * throughput it may need (held throughout, an allocation-heavy script ran about 5% slower). The
 * flags are process-wide, so this also covers isolated attempts' worker threads; `asUserCode` is
 * counted, so steps running side by side are all user code until the last one ends.
 *
 * Nothing is changed when the user set these V8 flags themselves (in `NODE_OPTIONS` or on the
 * command line), with `STACKLINE_HOLD_HEAP=0`, or on a V8 whose flags are not known here.
 */
import { setFlagsFromString } from 'node:v8';

/** The young generation grows by this factor (V8's default 2), the old one to (1 + percent/100) × live (0: V8 decides). */
const HELD = '--semi-space-growth-factor=1 --heap-growing-percent=20';
const V8_DEFAULTS = '--semi-space-growth-factor=2 --heap-growing-percent=0';
/** V8 majors whose flags above are known: Node 20 (11), 22 (12), 24 (13). */
const KNOWN_V8 = /^1[123]\./;

let holding = false;
let inUserCode = 0;

// One call for both (about 9 µs each, twice a step).
const set = (flags: string) => setFlagsFromString(flags);

/**
 * Starts holding the heap in this process, unless the user sized it themselves. Idempotent;
 * returns whether it is held.
 */
export function holdHeapGrowth(
  env: NodeJS.ProcessEnv = process.env,
  execArgv: readonly string[] = process.execArgv,
  v8Version: string = process.versions.v8,
): boolean {
  if (holding) return true;
  if (env.STACKLINE_HOLD_HEAP === '0' || !KNOWN_V8.test(v8Version)) return false;
  if (/semi[-_]space|heap[-_]growing/.test([...execArgv, env.NODE_OPTIONS ?? ''].join(' '))) return false;
  holding = true;
  if (inUserCode === 0) set(HELD);
  return true;
}

/** Runs `call` as a step's code: V8 sizes the heap as it would until the last such call ends. */
export async function asUserCode<T>(call: () => Promise<T>): Promise<T> {
  if (inUserCode++ === 0 && holding) set(V8_DEFAULTS);
  try {
    return await call();
  } finally {
    if (--inUserCode === 0 && holding) set(HELD);
  }
}
