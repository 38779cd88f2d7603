import { z } from 'zod';
import { NonRetriableError } from '../errors.ts';
import { RunTriggerSchema, triggeredRunId } from '../events/trigger-input.ts';
import type { MetadataStore } from '../metadata/metadata-store.ts';
import { TERMINAL_RUN_STATUSES } from '../metadata/types.ts';
import { nowIso } from '../util/ids.ts';
import { formatZodIssues } from '../util/zod-format.ts';

/**
 * An EventBridge "Step Functions Execution Status Change" event (source `aws.states`). Only the
 * fields used here are checked.
 */
export const ExecutionStatusChangeEvent = z.object({
  source: z.literal('aws.states'),
  'detail-type': z.literal('Step Functions Execution Status Change'),
  detail: z.object({
    executionArn: z.string().min(1),
    name: z.string().min(1),
    status: z.enum(['RUNNING', 'SUCCEEDED', 'FAILED', 'TIMED_OUT', 'ABORTED', 'PENDING_REDRIVE']),
    input: z.string().nullish(),
    error: z.string().nullish(),
    cause: z.string().nullish(),
  }),
});
export type ExecutionStatusChangeEvent = z.infer<typeof ExecutionStatusChangeEvent>;

/** What {@link endRunForExecution} did. */
export interface ExecutionEndOutcome {
  runId?: string;
  action: 'ended' | 'already-finished' | 'not-ended' | 'unknown-run';
  status?: string;
}

/**
 * Ends the run of an execution that stopped, timed out or failed outside the CLI (the console, an
 * API call, an execution timeout, a failure handler that could not record the failure): `ABORTED`
 * → `cancelled`, `TIMED_OUT` and `FAILED` → `failed`, with its running step runs. A run that has
 * already finished is left as it is. The run is found by the execution's input `runId`, by its
 * `trigger` (schedules and rules: the run id is derived from the event id), or else by the
 * execution name (the CLI names executions after their run).
 *
 * @throws NonRetriableError for an event that is not an execution status change.
 */
export async function endRunForExecution(event: unknown, metadata: MetadataStore): Promise<ExecutionEndOutcome> {
  const parsed = ExecutionStatusChangeEvent.safeParse(event);
  if (!parsed.success) {
    throw new NonRetriableError(`Not a Step Functions execution status change event: ${formatZodIssues(parsed.error)}`);
  }
  const { detail } = parsed.data;
  if (detail.status === 'RUNNING' || detail.status === 'SUCCEEDED' || detail.status === 'PENDING_REDRIVE')
    return { action: 'not-ended' };
  const runId = runIdOf(detail);
  const run = await metadata.runs.get(runId).catch(() => undefined);
  if (!run) return { runId, action: 'unknown-run' };
  if (TERMINAL_RUN_STATUSES.includes(run.status)) return { runId, action: 'already-finished', status: run.status };
  const status = detail.status === 'ABORTED' ? 'cancelled' : 'failed';
  await metadata.runs.abandon([runId], status, nowIso(), {
    type:
      detail.status === 'ABORTED'
        ? 'ExecutionAborted'
        : detail.status === 'TIMED_OUT'
          ? 'ExecutionTimedOut'
          : (detail.error ?? 'ExecutionFailed'),
    message: `Step Functions execution ${detail.executionArn} ended ${detail.status}${detail.cause ? `: ${detail.cause}` : ''}.`,
  });
  return { runId, action: 'ended', status: (await metadata.runs.get(runId)).status };
}

function runIdOf(detail: ExecutionStatusChangeEvent['detail']): string {
  try {
    const input = detail.input
      ? (JSON.parse(detail.input) as { runId?: unknown; pipeline?: unknown; trigger?: unknown })
      : {};
    if (typeof input.runId === 'string' && input.runId) return input.runId;
    // A schedule or rule started it: its run id comes from the trigger (see triggeredRunId).
    const trigger = RunTriggerSchema.safeParse(input.trigger);
    if (trigger.success && typeof input.pipeline === 'string') return triggeredRunId(input.pipeline, trigger.data);
  } catch {
    // not JSON: fall back to the name
  }
  return detail.name;
}
