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
