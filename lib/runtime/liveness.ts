import { readFileSync } from 'node:fs';
import { hostname } from 'node:os';
import type { MetadataStore } from '../metadata/metadata-store.ts';
import type { ExecutorIdentity, PipelineRun } from '../metadata/types.ts';

/**
 * Who executes a run, and whether they still do. An executor identifies itself by host, pid and
 * process start time, and keeps a lease (`leaseExpiresAt`) renewed while it works. A run is
 * abandoned when, on this host, its process is gone (recognised at once; the start time tells a
 * reused pid apart), or, elsewhere, when its lease has expired.
 */

/**
 * How long a lease lasts without renewal: an executor on another host is declared lost this long
 * after it stops. Generous because the heartbeat shares the event loop with the steps: a step that
 * blocks it (synchronous training) delays renewals.
 */
export const DEFAULT_LEASE_MS = 120_000;
/** Renewal period: several renewals fit in a lease, so one slow write does not lose it. */
export const HEARTBEAT_MS = 20_000;

/**
 * How long before the Lambda function's own timeout the step runner answers with a
 * `StepTimeoutError` (middy's `timeoutEarlyInMillis`): time to send the response before Lambda
 * kills the invocation. The compiler refuses a step whose `timeoutMs` does not fit in the function
 * timeout minus this margin.
 */
export const LAMBDA_TIMEOUT_EARLY_MS = 5_000;

/** The start time of process `pid` in clock ticks since boot (Linux `/proc/<pid>/stat` field 22). */
function processStartTicks(pid: number | 'self'): string | undefined {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    // The command name (field 2) may contain spaces and parentheses: fields count from its last ')'.
    return stat.slice(stat.lastIndexOf(')') + 2).split(' ')[19];
  } catch {
    return undefined;
  }
}

let self: ExecutorIdentity | undefined;

/** This process as an executor. `kind` says what runs it (a CLI or script, a Lambda, an ECS task). */
export function currentExecutor(kind: ExecutorIdentity['kind'] = 'process'): ExecutorIdentity {
  self ??= {
    kind: 'process',
    host: hostname(),
    pid: process.pid,
    processStartedAt: new Date(Date.now() - Math.round(process.uptime() * 1000)).toISOString(),
    ...(processStartTicks('self') === undefined ? {} : { processStart: processStartTicks('self')! }),
  };
  return { ...self, kind };
}

/** Why a run's executor counts as gone, or undefined while it may still be working. */
export type ExecutorLoss = { reason: 'process-gone' | 'lease-expired'; message: string };

/**
 * Decides whether the executor of `record` is gone. Records without an executor or lease (a run
 * owned by a Step Functions execution, records from before leases) are never declared lost here.
 */
export function executorLoss(
  record: Pick<PipelineRun, 'executor' | 'leaseExpiresAt'>,
  now = Date.now(),
  host = hostname(),
): ExecutorLoss | undefined {
  const { executor, leaseExpiresAt } = record;
  if (executor && executor.host === host && executor.kind !== 'lambda') {
    if (!processAlive(executor)) {
      return {
        reason: 'process-gone',
        message: `Its executor (pid ${executor.pid} on ${executor.host}, started ${executor.processStartedAt}) is no longer running.`,
      };
    }
    return undefined;
  }
  if (leaseExpiresAt !== undefined && Date.parse(leaseExpiresAt) < now) {
    const who = executor ? `${executor.kind} pid ${executor.pid} on ${executor.host}` : 'its executor';
    return { reason: 'lease-expired', message: `Its lease expired at ${leaseExpiresAt}: ${who} stopped renewing it.` };
  }
  return undefined;
}

function processAlive(executor: ExecutorIdentity): boolean {
  try {
    process.kill(executor.pid, 0);
  } catch (error) {
    // EPERM: the pid exists but belongs to another user.
    if ((error as NodeJS.ErrnoException).code !== 'EPERM') return false;
  }
  if (executor.processStart === undefined) return true;
  const start = processStartTicks(executor.pid);
  // Another process now has this pid: ours is gone.
  return start === undefined || start === executor.processStart;
}

export function leaseUntil(ms = DEFAULT_LEASE_MS, now = Date.now()): string {
  return new Date(now + ms).toISOString();
}

/**
 * Keeps a run's lease (and the leases of its running step runs) alive while this process works on
 * it. The timer is unref'd: it never keeps a process alive. `stop()` before finishing the run.
 */
export function startHeartbeat(
  metadata: MetadataStore,
  runId: string,
  runningStepRuns: () => string[],
  options: { leaseMs?: number; intervalMs?: number; onRunEnded?: () => void } = {},
): { stop(): void } {
  const leaseMs = options.leaseMs ?? DEFAULT_LEASE_MS;
  let busy = false;
  const timer = setInterval(() => {
    if (busy) return;
    busy = true;
    metadata.runs
      .renewLease(runId, leaseUntil(leaseMs), runningStepRuns())
      .then((open) => {
        if (!open) options.onRunEnded?.();
      })
      .catch(() => {
        // A missed renewal is retried at the next beat; the lease outlasts two of them.
      })
      .finally(() => {
        busy = false;
      });
  }, options.intervalMs ?? HEARTBEAT_MS);
  timer.unref();
  return { stop: () => clearInterval(timer) };
}
