import { hostname } from 'node:os';
import { setTimeout as sleep } from 'node:timers/promises';
import { ConflictError, StackConfigError } from '../errors.ts';
import { type PipelineRun, TERMINAL_RUN_STATUSES } from '../metadata/types.ts';
import { executorLoss } from '../runtime/liveness.ts';
import type { StackRuntime } from '../stacks/project.ts';
import { nowIso } from '../util/ids.ts';

export interface CancelResult {
  run: PipelineRun;
  /** How the executor was told: its process signalled, its execution stopped, or (executor gone or remote) only recorded. */
  how: 'signalled' | 'execution-stopped' | 'recorded';
}

/**
 * Cancels a run on any stack: a Step Functions run's execution is stopped (`StopExecution`); a run
 * whose process is alive on this host gets SIGTERM (the CLI then cancels its steps and records
 * `cancelled` itself); in every case the run ends `cancelled` with its running step runs. An
 * executor on another host sees the run ended at its next heartbeat and stops.
 *
 * @throws ConflictError when the run has already finished; NotFoundError for an unknown run.
 */
export async function cancelRun(
  stack: StackRuntime,
  runId: string,
  options: { waitMs?: number; reason?: string } = {},
): Promise<CancelResult> {
  const run = await stack.metadata.runs.get(runId);
  if (TERMINAL_RUN_STATUSES.includes(run.status)) {
    throw new ConflictError(`Run "${runId}" has already finished (${run.status}); there is nothing to cancel.`, {
      context: { runId, status: run.status },
    });
  }
  const reason = options.reason ?? 'Cancelled with `stackline runs cancel`.';
  let how: CancelResult['how'] = 'recorded';
  const executionArn = run.config.executionArn;
  if (typeof executionArn === 'string') {
    if (stack.components.orchestrator.type !== 'step-functions') {
      throw new StackConfigError(
        `Run "${runId}" runs on Step Functions, but stack "${stack.name}" has no step-functions orchestrator to stop it with; pass --stack with the stack it ran on.`,
      );
    }
    const { stepFunctionsClient, stopExecution } = await import('./step-functions-orchestrator.ts');
    const sfn = stepFunctionsClient(stack);
    try {
      await stopExecution(sfn, executionArn, reason);
    } finally {
      sfn.destroy();
    }
    how = 'execution-stopped';
  } else if (run.executor && run.executor.host === hostname() && !executorLoss(run)) {
    try {
      process.kill(run.executor.pid, 'SIGTERM');
      how = 'signalled';
      // The run's own process records the cancellation; give it a moment before recording it here.
      const deadline = Date.now() + (options.waitMs ?? 10_000);
      while (Date.now() < deadline) {
        const current = await stack.metadata.runs.get(runId);
        if (TERMINAL_RUN_STATUSES.includes(current.status)) return { run: current, how };
        await sleep(100);
      }
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== 'ESRCH') throw error;
    }
  }
  await stack.metadata.runs.abandon([runId], 'cancelled', nowIso(), { type: 'RunCancelled', message: reason });
  return { run: await stack.metadata.runs.get(runId), how };
}
