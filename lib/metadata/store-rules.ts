import { RunFinishedError, StepAlreadyDoneError, StepInProgressError, ValidationError } from '../errors.ts';
import { type ErrorInfo, MODEL_STAGES, type RunStatus, type StepRun, type StepRunStatus, type Tag } from './types.ts';

/**
 * Input rules every MetadataStore adapter applies the same way, so the conformance suite holds
 * SQLite and DynamoDB to one behaviour.
 */

export const DEFAULT_PAGE_LIMIT = 50;
export const MAX_PAGE_LIMIT = 1000;

/** Labels a version name or alias cannot take: they already mean something in a version reference. */
export const RESERVED_LABELS: readonly string[] = [...MODEL_STAGES, 'latest'];

export function pageLimit(limit: number | undefined): number {
  if (limit === undefined) return DEFAULT_PAGE_LIMIT;
  if (!Number.isInteger(limit) || limit < 1) {
    throw new ValidationError(`Page limit must be a positive integer, got ${limit}`, { context: { limit } });
  }
  return Math.min(limit, MAX_PAGE_LIMIT);
}

export function uniqueTags(tags: readonly Tag[]): Tag[] {
  return [...new Set(tags)];
}

/** Parses an ISO-8601 timestamp filter and returns it normalized to UTC. */
export function normalizeTimestamp(value: string, field: string): string {
  const time = Date.parse(value);
  if (Number.isNaN(time)) {
    throw new ValidationError(`"${field}" must be an ISO-8601 timestamp, got "${value}"`, {
      context: { [field]: value },
    });
  }
  return new Date(time).toISOString();
}

export function assertVersionLabel(model: string, what: 'alias' | 'version name', label: string): void {
  if (label === '' || RESERVED_LABELS.includes(label) || /^\d+$/.test(label)) {
    throw new ValidationError(
      `Model "${model}": "${label}" cannot be a ${what}; stages, "latest", numbers and "" would be ambiguous in a version reference`,
      { context: { model, [what === 'alias' ? 'alias' : 'name']: label } },
    );
  }
}

// ---------- Step run slots: one live attempt per (run, step id) ----------

/**
 * What an existing step run means for a new leased attempt at the same (run, stepId): `done`
 * (completed or cached: nothing to run), `live` (running under an unexpired or no lease: a duplicate),
 * `expired` (running, but its executor's lease ran out: replace it) or `free` (failed, cancelled).
 */
export function slotVerdict(
  status: StepRunStatus,
  leaseExpiresAt: string | undefined,
  now: string,
): 'done' | 'live' | 'expired' | 'free' {
  if (status === 'completed' || status === 'cached') return 'done';
  if (status !== 'running') return 'free';
  return leaseExpiresAt !== undefined && leaseExpiresAt <= now ? 'expired' : 'live';
}

/** @throws RunFinishedError when a step run would start in a run that has already finished. */
export function assertRunOpen(stepRun: Pick<StepRun, 'id' | 'runId' | 'stepId'>, status: RunStatus): void {
  if (status === 'pending' || status === 'running') return;
  throw new RunFinishedError(
    `Run "${stepRun.runId}" has already finished (${status}); step "${stepRun.stepId}" was not started.`,
    { context: { runId: stepRun.runId, stepId: stepRun.stepId, stepRunId: stepRun.id, status } },
  );
}

export function stepAlreadyDone(stepRun: Pick<StepRun, 'runId' | 'stepId'>, doneId: string, status: string) {
  return new StepAlreadyDoneError(
    `Step "${stepRun.stepId}" of run "${stepRun.runId}" already ${status === 'cached' ? 'reused a cached result' : 'completed'} (step run "${doneId}"); it is not run again.`,
    { context: { runId: stepRun.runId, stepId: stepRun.stepId, stepRunId: doneId } },
  );
}

export function stepInProgress(
  stepRun: Pick<StepRun, 'runId' | 'stepId'>,
  holderId: string,
  leaseExpiresAt: string | undefined,
) {
  return new StepInProgressError(
    `Step "${stepRun.stepId}" of run "${stepRun.runId}" is already running (step run "${holderId}"${leaseExpiresAt ? `, lease until ${leaseExpiresAt}` : ''}); retry after it ends or its lease expires.`,
    { context: { runId: stepRun.runId, stepId: stepRun.stepId, stepRunId: holderId } },
  );
}

export function leaseExpiredError(expiredId: string, replacedBy: string): ErrorInfo {
  return {
    type: 'LeaseExpired',
    message: `Step run "${expiredId}" stopped renewing its lease (its executor is gone); step run "${replacedBy}" took over.`,
  };
}
