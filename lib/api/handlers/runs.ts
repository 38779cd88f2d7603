import type { z } from 'zod';
import { NotFoundError } from '../../errors.ts';
import { withInlineStepSnapshot } from '../../metadata/step-snapshot.ts';
import type { Metadata, PipelineRun } from '../../metadata/types.ts';
import type { ApiContext } from '../context.ts';
import { toWirePage } from '../context.ts';
import type {
  MetadataPatchSchema,
  OkSchema,
  PipelineListSchema,
  RunDetailSchema,
  RunListQuery,
  RunPageSchema,
  RunParams,
  StartedRunSchema,
  StartRunRequestSchema,
  StepLogsSchema,
  StepRunListSchema,
  StepRunParams,
} from '../schemas.ts';

type Out<T extends z.ZodType> = z.input<T>;

/** Runs, newest first, with the CLI's filters (pipeline, status, tag, since/until) and a cursor. */
export async function listRuns(
  ctx: ApiContext,
  query: z.output<typeof RunListQuery>,
): Promise<Out<typeof RunPageSchema>> {
  const { since, until, ...rest } = query;
  return toWirePage(
    await ctx.metadata.runs.list({
      ...rest,
      ...(since ? { since: new Date(since).toISOString() } : {}),
      ...(until ? { until: new Date(until).toISOString() } : {}),
    }),
  );
}

/**
 * Pipelines that have run on this stack, from their runs: name, run count, the last run's time and
 * status. Stackline keeps no pipeline registry; a pipeline exists for the API once it has run.
 */
export async function listPipelines(ctx: ApiContext): Promise<Out<typeof PipelineListSchema>> {
  const byName = new Map<string, { name: string; runCount: number; last: PipelineRun }>();
  let cursor: string | undefined;
  do {
    const page = await ctx.metadata.runs.list({ limit: 1000, ...(cursor ? { cursor } : {}) });
    for (const run of page.items) {
      const seen = byName.get(run.pipeline);
      if (seen) seen.runCount++;
      else byName.set(run.pipeline, { name: run.pipeline, runCount: 1, last: run });
    }
    cursor = page.nextCursor;
  } while (cursor);
  return {
    items: [...byName.values()]
      .sort((a, b) => a.name.localeCompare(b.name))
      .map((p) => ({ name: p.name, runCount: p.runCount, lastRunAt: p.last.startedAt, lastStatus: p.last.status })),
  };
}

/**
 * A run with its step runs. Its per-step snapshot is read from the artifact store and returned inline
 * (`run.config.steps`), as records carried it before it moved out, so clients see one shape.
 * @throws NotFoundError
 */
export async function getRun(
  ctx: ApiContext,
  params: z.output<typeof RunParams>,
): Promise<Out<typeof RunDetailSchema>> {
  const run = await ctx.metadata.runs.get(params.runId);
  const [detailed, steps] = await Promise.all([
    withInlineStepSnapshot(ctx.artifacts, run),
    ctx.metadata.runs.listSteps(run.id),
  ]);
  return { run: detailed, steps };
}

/** The step runs of a run, in start order. @throws NotFoundError */
export async function listStepRuns(
  ctx: ApiContext,
  params: z.output<typeof RunParams>,
): Promise<Out<typeof StepRunListSchema>> {
  await ctx.metadata.runs.get(params.runId);
  return { items: await ctx.metadata.runs.listSteps(params.runId) };
}

/** The captured log lines of one step run. @throws NotFoundError (also when it belongs to another run) */
export async function getStepLogs(
  ctx: ApiContext,
  params: z.output<typeof StepRunParams>,
): Promise<Out<typeof StepLogsSchema>> {
  const step = await ctx.metadata.runs.getStep(params.stepRunId);
  if (step.runId !== params.runId) {
    throw new NotFoundError(`Run ${params.runId} has no step run ${params.stepRunId}`, { context: params });
  }
  return { stepRunId: step.id, stepId: step.stepId, logs: step.logs ?? [] };
}

/** Merges values into a run's metadata. @throws NotFoundError */
export async function patchRunMetadata(
  ctx: ApiContext,
  params: z.output<typeof RunParams>,
  body: z.output<typeof MetadataPatchSchema>,
): Promise<Out<typeof OkSchema>> {
  await ctx.metadata.runs.get(params.runId);
  await ctx.metadata.logMetadata({ kind: 'run', id: params.runId }, body.values as Metadata);
  return { ok: true };
}

/** The tag every run started through the API carries: who started it, as the API authenticated them. */
export function userTrigger(actor: string): string {
  return `trigger:user ${actor}`;
}

/**
 * Starts a run of a pipeline the server knows (`stackline serve --pipelines`, or the environment's
 * deployed state machines on AWS), recording the caller as its trigger. Returns when the run is
 * recorded or its execution started; poll `GET /runs/{runId}` for its progress.
 *
 * @throws NotFoundError when no such pipeline is known here; ConflictError when `definitionSha256` differs
 */
export async function startRun(
  ctx: ApiContext,
  body: z.output<typeof StartRunRequestSchema>,
): Promise<Out<typeof StartedRunSchema>> {
  if (!ctx.runs) {
    throw new NotFoundError(
      `No pipeline "${body.pipeline}" here: this server was started without pipelines; start it with \`stackline serve --pipelines FILE\`.`,
      { context: { pipeline: body.pipeline } },
    );
  }
  const trigger = userTrigger(ctx.caller.actor);
  const started = await ctx.runs.start(body, { actor: ctx.caller.actor, tags: [trigger] });
  return { runId: started.runId, pipeline: body.pipeline, trigger, executionArn: started.executionArn ?? null };
}
