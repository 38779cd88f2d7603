import { createHash } from 'node:crypto';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';

/**
 * Test-only fault injection: `STACKLINE_FAULT_POINT=name:n` makes the process SIGKILL itself the
 * n-th time (1-based) it passes the named point (`faultPoint('blob:written')`), so the
 * fault-injection suite can stop a real run at exactly the moments that matter (during a step,
 * between a blob write and its record, inside version allocation or a promotion).
 *
 * Without the variable, `faultPoint` is an empty function chosen once at load: the normal path
 * pays one call to a no-op.
 */

function parse(spec: string): { name: string; hit: number } {
  const at = spec.lastIndexOf(':');
  const hit = Number(spec.slice(at + 1));
  if (at <= 0 || !Number.isInteger(hit) || hit < 1) {
    throw new Error(`STACKLINE_FAULT_POINT must be "name:n" with n ≥ 1, got ${JSON.stringify(spec)}`);
  }
  return { name: spec.slice(0, at), hit };
}

function armed(spec: string): (name: string) => void {
  const target = parse(spec);
  let hits = 0;
  return (name) => {
    if (name !== target.name || ++hits !== target.hit) return;
    process.kill(process.pid, 'SIGKILL');
  };
}

const spec = process.env.STACKLINE_FAULT_POINT;

/** Marks a point where the fault-injection suite may kill the process. */
export const faultPoint: (name: string) => void = spec ? armed(spec) : () => {};

/**
 * Test-only delivery faults for the step runner as Step Functions invokes it:
 * `STACKLINE_DELIVERY_FAULTS=dir=<dir>,before=<p>,after=<p>,seed=<n>` makes a `run-step` fail
 * with a transient error before running (probability `before`) or after completing (`after`: the
 * response is lost, so the state machine's Retry delivers it again). Each (request, phase) fails
 * at most once: a marker file in `dir` (shared by every invocation, each its own process) records
 * it, so the retries the state machine allows always suffice. The draw is a hash of the seed, the
 * step (its id and map index, not the run id) and the phase: the same steps fail in every run, so a
 * test's faults do not depend on the run ids it happens to get.
 */
export function deliveryFault(runId: string, point: string, phase: 'before' | 'after'): void {
  deliveryFaults?.(runId, point, phase);
}

function armedDelivery(spec: string): (runId: string, point: string, phase: 'before' | 'after') => void {
  const settings = Object.fromEntries(spec.split(',').map((pair) => pair.split('=', 2) as [string, string]));
  const dir = settings.dir;
  if (!dir) throw new Error(`STACKLINE_DELIVERY_FAULTS needs dir=<directory>, got ${JSON.stringify(spec)}`);
  return (runId, point, phase) => {
    const probability = Number(settings[phase] ?? 0);
    const digest = createHash('sha256')
      .update(`${settings.seed ?? 0}\u0000${point}\u0000${phase}`)
      .digest();
    const key = `${runId}/${point}`;
    if (digest.readUInt32BE(0) / 2 ** 32 >= probability) return;
    const marker = join(dir, `${phase}-${createHash('sha256').update(key).digest('hex').slice(0, 16)}`);
    try {
      writeFileSync(marker, key, { flag: 'wx' });
    } catch {
      return; // failed once already: this delivery goes through
    }
    const error =
      phase === 'before'
        ? new Error(`Injected: throttled before running ${key}.`)
        : new Error(`Injected: the response of ${key} was lost after the step completed.`);
    error.name = phase === 'before' ? 'ThrottlingException' : 'ServiceUnavailable';
    throw error;
  };
}

const deliverySpec = process.env.STACKLINE_DELIVERY_FAULTS;
const deliveryFaults = deliverySpec ? armedDelivery(deliverySpec) : undefined;
