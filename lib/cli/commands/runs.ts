import { NotFoundError, ValidationError } from '../../errors.ts';
import { loadStepSnapshot, stepSnapshotReference } from '../../metadata/step-snapshot.ts';
import { NOT_RUN, type PipelineRun, type RunStatus, type StepRun } from '../../metadata/types.ts';
import { cancelRun } from '../../orchestrators/cancel-run.ts';
import { explainRun } from '../../runtime/explain.ts';
import { executorLoss } from '../../runtime/liveness.ts';
import { EXECUTOR_LOST, type ReapedRun, reapAbandonedRuns } from '../../runtime/reaper.ts';
import type { StackRuntime } from '../../stacks/project.ts';
import { type CliIo, colors, formatDuration, printExplanations, printJson, table } from '../io.ts';

const STATUSES: RunStatus[] = ['pending', 'running', 'completed', 'failed', 'cancelled'];

export interface RunsListOptions {
  pipeline?: string;
  status?: string;
  tag?: string;
  since?: string;
  until?: string;
  limit: number;
  cursor?: string;
  json?: boolean;
}

function parseTime(value: string | undefined, flag: string): string | undefined {
  if (value === undefined) return undefined;
  const relative = /^(\d+)([mhd])$/.exec(value);
  if (relative) {
    const unit = { m: 60_000, h: 3_600_000, d: 86_400_000 }[relative[2] as 'm' | 'h' | 'd'];
    return new Date(Date.now() - Number(relative[1]) * unit).toISOString();
  }
  const t = Date.parse(value);
  if (Number.isNaN(t))
    throw new ValidationError(
      `${flag} ${JSON.stringify(value)} is not a time: use an ISO date (2026-11-26T10:00Z) or an age (30m, 12h, 7d).`,
    );
  return new Date(t).toISOString();
}

export async function runsList(stack: StackRuntime, options: RunsListOptions, io: CliIo): Promise<void> {
  if (options.status && !STATUSES.includes(options.status as RunStatus)) {
    throw new ValidationError(
      `--status ${JSON.stringify(options.status)} is not a run status (${STATUSES.join(', ')}).`,
    );
  }
  const since = parseTime(options.since, '--since');
  const until = parseTime(options.until, '--until');
  const page = await stack.metadata.runs.list({
    limit: options.limit,
    ...(options.cursor ? { cursor: options.cursor } : {}),
    ...(options.pipeline ? { pipeline: options.pipeline } : {}),
    ...(options.status ? { status: options.status as RunStatus } : {}),
    ...(options.tag ? { tag: options.tag } : {}),
    ...(since ? { since } : {}),
    ...(until ? { until } : {}),
  });
  if (options.json) {
    printJson(io, { runs: page.items, nextCursor: page.nextCursor ?? null });
    return;
  }
  const rows = [['RUN', 'PIPELINE', 'STATUS', 'STARTED', 'DURATION', 'TAGS']];
  for (const r of page.items) {
    rows.push([
      r.id,
      r.pipeline,
      describeStatus(r),
      r.startedAt.replace('T', ' ').slice(0, 19),
      formatDuration(r.endedAt ? Date.parse(r.endedAt) - Date.parse(r.startedAt) : undefined),
      r.tags.join(','),
    ]);
  }
  io.stdout.write(page.items.length ? table(rows) : 'No runs match.\n');
  if (page.nextCursor) io.stderr.write(colors(io).dim(`more: --cursor ${page.nextCursor}\n`));
}

export async function runsShow(
  stack: StackRuntime,
  runId: string,
  options: { json?: boolean },
  io: CliIo,
): Promise<void> {
  const run = await stack.metadata.runs.get(runId);
  const steps = await stack.metadata.runs.listSteps(runId);
  const versionIds = steps.flatMap((s) => [...Object.values(s.outputs), ...Object.values(s.inputs)]);
  const versions = new Map((await stack.metadata.artifacts.getVersionsByIds(versionIds)).map((v) => [v.id, v]));
  const describe = (ids: Record<string, string>) =>
    Object.fromEntries(
      Object.entries(ids).map(([name, id]) => {
        const v = versions.get(id);
        return [name, v ? { artifact: v.name, version: v.version, id } : { id }];
      }),
    );
  // The exact versions each step read and wrote, so they can be loaded (`artifacts load NAME VERSION`).
  const describedSteps = steps.map((s) => ({
    ...s,
    inputArtifacts: describe(s.inputs),
    outputArtifacts: describe(s.outputs),
  }));
  // Steps of the pipeline with no step run never started.
  const recorded = new Set(steps.map((s) => s.stepId.replace(/\[\d+\]$/, '')));
  // Read only when some planned step has no step run: the snapshot is a blob in the artifact store.
  const allRan = recorded.size >= (stepSnapshotReference(run)?.steps ?? Number.POSITIVE_INFINITY);
  const planned = allRan ? [] : Object.keys((await loadStepSnapshot(stack.artifacts, run)) ?? {});
  const notRun = planned.filter((id) => !recorded.has(id)).map((stepId) => ({ stepId, status: NOT_RUN }));
  if (options.json) {
    printJson(io, { run, steps: [...describedSteps, ...notRun] });
    return;
  }
  const c = colors(io);
  if (run.executor) {
    const e = run.executor;
    io.stdout.write(
      `${c.bold(run.pipeline)} executor ${e.kind} pid ${e.pid} on ${e.host}${run.leaseExpiresAt ? `, lease until ${run.leaseExpiresAt}` : ''}\n`,
    );
  }
  io.stdout.write(
    `${c.bold(run.pipeline)} ${run.id}\n  status   ${describeStatus(run)}\n  stack    ${run.stack}\n  started  ${run.startedAt}\n  ended    ${run.endedAt ?? '-'}\n  params   ${JSON.stringify(run.parameters)}\n  tags     ${run.tags.join(', ') || '-'}\n`,
  );
  io.stdout.write(`  by       ${startedBy(run)}\n`);
  if (run.error) io.stdout.write(`  error    ${run.error.type}: ${run.error.message}\n`);
  const versionList = (artifacts: Record<string, { artifact?: string; version?: number }>) =>
    Object.entries(artifacts)
      .map(([name, a]) => (a.artifact ? `${name}=${a.artifact}@v${a.version}` : name))
      .join(' ') || '-';
  const rows = [['STEP', 'STATUS', 'DURATION', 'ATTEMPTS', 'INPUTS', 'OUTPUTS']];
  for (const s of describedSteps) {
    rows.push([
      s.stepId,
      describeStatus(s),
      formatDuration(s.durationMs),
      String(s.attempts),
      versionList(s.inputArtifacts),
      versionList(s.outputArtifacts),
    ]);
  }
  for (const s of notRun) rows.push([s.stepId, s.status, '-', '0', '-', '-']);
  io.stdout.write(`\n${table(rows)}`);
  for (const s of steps.filter((x) => x.error))
    io.stdout.write(`\n${s.stepId}: ${s.error!.type}: ${s.error!.message}\n`);
}

/** `stackline runs explain <run> [step]`: why each step hit or missed the cache. */
export async function runsExplain(
  stack: StackRuntime,
  runId: string,
  stepId: string | undefined,
  options: { json?: boolean },
  io: CliIo,
): Promise<void> {
  const explanations = await explainRun(stack.metadata, runId, stepId);
  if (stepId !== undefined && explanations.length === 0) {
    const ids = (await stack.metadata.runs.listSteps(runId)).map((s) => s.stepId);
    throw new NotFoundError(`Run ${runId} has no step "${stepId}" (its steps: ${ids.join(', ') || 'none'}).`);
  }
  if (options.json) printJson(io, { runId, steps: explanations });
  else printExplanations(io, explanations);
}

/**
 * A status as people should read it: a run whose executor is gone says so (`running (executor
 * lost)` before it is reaped, `failed (executor lost)` after).
 */
export function describeStatus(
  record: Pick<PipelineRun | StepRun, 'status' | 'error' | 'executor' | 'leaseExpiresAt'>,
) {
  if (record.status === 'failed' && (record.error?.type === EXECUTOR_LOST || record.error?.type === 'LeaseExpired'))
    return 'failed (executor lost)';
  if ((record.status === 'running' || record.status === 'pending') && executorLoss(record))
    return `${record.status} (executor lost)`;
  return record.status;
}

/** `stackline runs reap`: ends every run whose executor is gone; `--dry-run` only lists them. */
export async function runsReap(stack: StackRuntime, options: { dryRun?: boolean; json?: boolean }, io: CliIo) {
  let reaped: ReapedRun[];
  if (stack.components.orchestrator.type === 'step-functions') {
    const { stepFunctionsClient, executionStatus } = await import('../../orchestrators/step-functions-orchestrator.ts');
    const sfn = stepFunctionsClient(stack);
    try {
      reaped = await reapAbandonedRuns(stack.metadata, {
        ...(options.dryRun ? { dryRun: true } : {}),
        executionStatus: (arn) => executionStatus(sfn, arn),
      });
    } finally {
      sfn.destroy();
    }
  } else {
    reaped = await reapAbandonedRuns(stack.metadata, options.dryRun ? { dryRun: true } : {});
  }
  if (options.json) {
    printJson(io, { reaped, dryRun: options.dryRun === true });
    return;
  }
  if (reaped.length === 0) {
    io.stdout.write('No abandoned runs.\n');
    return;
  }
  for (const r of reaped)
    io.stdout.write(`${r.runId} ${r.pipeline} ${options.dryRun ? 'would be reaped' : 'reaped'}: ${r.message}\n`);
}

/** `stackline runs cancel <run>`: stops a run on any stack and records it `cancelled`. */
export async function runsCancel(stack: StackRuntime, runId: string, options: { json?: boolean }, io: CliIo) {
  const { run, how } = await cancelRun(stack, runId);
  if (options.json) {
    printJson(io, { runId: run.id, status: run.status, how });
    return;
  }
  const detail = {
    signalled: 'its process was signalled',
    'execution-stopped': 'its execution was stopped',
    recorded: 'recorded',
  }[how];
  io.stdout.write(`${run.id} ${run.status} (${detail})\n`);
}

/** Who or what started a run: a schedule or rule (recorded by `start-run`), else the recorded user. */
function startedBy(run: PipelineRun): string {
  const trigger = run.config.trigger as { kind?: string; name?: string; id?: string } | undefined;
  return trigger?.kind ? `${trigger.kind} ${trigger.name} (${trigger.id})` : run.createdBy;
}
