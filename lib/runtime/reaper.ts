import type { MetadataStore } from '../metadata/metadata-store.ts';
import type { PipelineRun, RunStatus } from '../metadata/types.ts';
import { nowIso } from '../util/ids.ts';
import { type ExecutorLoss, executorLoss } from './liveness.ts';

/** One run the reaper ended. */
export interface ReapedRun {
  runId: string;
  pipeline: string;
  reason: ExecutorLoss['reason'] | 'execution-ended';
  message: string;
}

export interface ReapOptions {
  /** Report what would be reaped without changing anything. */
  dryRun?: boolean;
  /**
   * For runs a Step Functions execution owns (`config.executionArn`): the execution's status
   * (`RUNNING`, `SUCCEEDED`, `FAILED`, `TIMED_OUT`, `ABORTED`). Without it such runs are left to the
   * execution's own failure handler and the execution status-change rule.
   */
  executionStatus?: (executionArn: string) => Promise<string | undefined>;
}

/** The error recorded on a reaped run and its step runs; `runs list` shows it as "executor lost". */
export const EXECUTOR_LOST = 'ExecutorLost';

/**
 * Ends every `pending`/`running` run whose executor is gone (a dead process on this host, an
 * expired lease elsewhere, an execution that already ended) as `failed`, with its running step
 * runs, and returns what it ended. One indexed query per open status: cheap enough to run on every
 * open.
 */
export async function reapAbandonedRuns(metadata: MetadataStore, options: ReapOptions = {}): Promise<ReapedRun[]> {
  const reaped: ReapedRun[] = [];
  for (const status of ['running', 'pending'] as RunStatus[]) {
    let cursor: string | undefined;
    do {
      const page = await metadata.runs.list({ status, limit: 500, ...(cursor ? { cursor } : {}) });
      for (const run of page.items) {
        const loss = await lossOf(run, options);
        if (!loss) continue;
        if (!options.dryRun) {
          const changed = await metadata.runs.abandon([run.id], 'failed', nowIso(), {
            type: EXECUTOR_LOST,
            message: `Run "${run.id}" was abandoned: ${loss.message}`,
          });
          if (changed.length === 0) continue;
        }
        reaped.push({ runId: run.id, pipeline: run.pipeline, reason: loss.reason, message: loss.message });
      }
      cursor = page.nextCursor;
    } while (cursor);
  }
  return reaped;
}

async function lossOf(run: PipelineRun, options: ReapOptions): Promise<ReapedRun | undefined> {
  const loss = executorLoss(run);
  if (loss) return { runId: run.id, pipeline: run.pipeline, ...loss };
  const executionArn = run.config.executionArn;
  if (typeof executionArn !== 'string' || !options.executionStatus) return undefined;
  const status = await options.executionStatus(executionArn);
  if (status === undefined || status === 'RUNNING' || status === 'PENDING_REDRIVE') return undefined;
  return {
    runId: run.id,
    pipeline: run.pipeline,
    reason: 'execution-ended',
    message: `Its Step Functions execution ended ${status} without recording the run's end.`,
  };
}
