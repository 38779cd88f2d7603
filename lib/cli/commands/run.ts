import { once } from 'node:events';
import type { PipelineDefinition } from '../../dsl/pipeline.ts';
import type { MetadataStore } from '../../metadata/metadata-store.ts';
import { SqliteMetadataStore } from '../../metadata/sqlite/sqlite-metadata-store.ts';
import { NOT_RUN, type PipelineRun } from '../../metadata/types.ts';
import { explainRun, type StepExplanation, stepRunExplainer } from '../../runtime/explain.ts';
import { type RunResult, runPipelineLocally } from '../../runtime/local-orchestrator.ts';
import { validateRunOptions } from '../../runtime/run-options.ts';
import type { Project } from '../../stacks/project.ts';
import { nowIso } from '../../util/ids.ts';
import { ExitCode } from '../exit-codes.ts';
import { type CliIo, colors, printExplanations } from '../io.ts';
import { loadPipeline } from '../load-pipeline.ts';
import { progressPrinter } from '../progress.ts';
import { mergeParams, parseParamPairs, type RunConfig, readRunConfig } from '../run-config.ts';

export interface RunCommandOptions {
  pipeline?: string;
  param: string[];
  config?: string;
  cache: boolean;
  stack?: string;
  tag: string[];
  concurrency?: number;
  json?: boolean;
  explain?: boolean;
}

/** Machine-readable summary printed by `stackline run --json`. */
export function summarizeRun(result: RunResult, explanations: StepExplanation[] = []) {
  const explained = new Map(explanations.map((e) => [e.stepRunId, e]));
  return { ...runHead(result.run), steps: result.steps.map((s) => stepSummary(s, explained)) };
}

/** The summary's fields before `steps`. */
function runHead(run: PipelineRun) {
  return {
    runId: run.id,
    pipeline: run.pipeline,
    status: run.status,
    stack: run.stack,
    startedAt: run.startedAt,
    endedAt: run.endedAt ?? null,
    durationMs: run.endedAt ? Date.parse(run.endedAt) - Date.parse(run.startedAt) : null,
    parameters: run.parameters,
    tags: run.tags,
    modelVersionId: run.modelVersionId ?? null,
    error: run.error ?? null,
  };
}

/** One entry of the summary's `steps`. */
function stepSummary(
  { node, result, stepRun }: RunResult['steps'][number],
  explained: ReadonlyMap<string, StepExplanation>,
) {
  return {
    name: node.id,
    step: node.spec.name,
    status: stepRun?.status ?? NOT_RUN,
    cached: stepRun?.status === 'cached',
    durationMs: stepRun?.durationMs ?? null,
    attempts: stepRun?.attempts ?? 0,
    stepRunId: stepRun?.id ?? null,
    error: stepRun?.error ? { type: stepRun.error.type, message: stepRun.error.message } : null,
    explain: explainedStep(stepRun ? explained.get(stepRun.id) : undefined),
    outputs: result
      ? Object.entries(result.outputs).map(([name, v]) => ({
          name,
          artifact: v.name,
          version: v.version,
          id: v.id,
          uri: v.uri,
        }))
      : [],
  };
}

/** How many steps the summary writer holds at once. */
const SUMMARY_BATCH = 100;

/**
 * Writes `printJson(io, summarizeRun(result, explanations))`, byte for byte, a batch of steps at
 * a time, waiting for a full pipe to drain. With `fromStore`, each batch's step runs and outputs
 * are read back from `metadata` (for a run made with `keepResults: false`); otherwise they come
 * from the result. A 3,000-step run's summary is megabytes of JSON: built whole at the end of the
 * run (and queued for a reader slower than us), it was the largest allocation of the process.
 */
export async function writeRunSummary(
  io: CliIo,
  result: RunResult,
  metadata: MetadataStore,
  options: { fromStore?: boolean } = {},
): Promise<void> {
  const head = JSON.stringify({ ...runHead(result.run), steps: [] }, null, 2);
  if (result.steps.length === 0) {
    io.stdout.write(`${head}\n`);
    return;
  }
  const explain = stepRunExplainer(metadata, result.run);
  // `steps` is the last field: its empty array closes the object.
  const closing = '[]\n}';
  let chunk = `${head.slice(0, head.length - closing.length)}[\n`;
  for (let from = 0; from < result.steps.length; from += SUMMARY_BATCH) {
    const batch = result.steps.slice(from, from + SUMMARY_BATCH);
    const steps = options.fromStore ? await readStepResults(metadata, result.run.id, batch) : batch;
    const explained = await explain(steps.flatMap(({ stepRun }) => (stepRun ? [stepRun] : [])));
    for (const [i, step] of steps.entries()) {
      const last = from + i === result.steps.length - 1;
      // JSON.stringify escapes newlines inside strings, so every newline here is layout.
      chunk += `    ${JSON.stringify(stepSummary(step, explained), null, 2).replaceAll('\n', '\n    ')}`;
      chunk += last ? '\n  ]\n}\n' : ',\n';
      if (chunk.length >= 64 * 1024 || last) {
        await writeWithBackpressure(io.stdout, chunk);
        chunk = '';
      }
    }
  }
}

/** The latest step run of each listed step, with its output versions, read from the store. */
async function readStepResults(
  metadata: MetadataStore,
  runId: string,
  steps: RunResult['steps'],
): Promise<RunResult['steps']> {
  const stepRuns = await metadata.runs.latestSteps(
    runId,
    steps.map((s) => s.node.id),
  );
  const ids = [...stepRuns.values()].flatMap((s) => Object.values(s.outputs));
  const versions = new Map((await metadata.artifacts.getVersionsByIds(ids)).map((v) => [v.id, v]));
  return steps.map(({ node }) => {
    const stepRun = stepRuns.get(node.id);
    if (!stepRun) return { node };
    if (stepRun.status !== 'completed' && stepRun.status !== 'cached') return { node, stepRun };
    const outputs = Object.fromEntries(Object.entries(stepRun.outputs).map(([k, id]) => [k, versions.get(id)!]));
    return { node, stepRun, result: { stepRun, outputs } };
  });
}

/** Writes `text`; when the stream says its buffer is full (a pipe nobody has read yet), waits for it to drain. */
async function writeWithBackpressure(stream: CliIo['stdout'], text: string): Promise<void> {
  if (stream.write(text) !== false) return;
  const emitter = stream as Partial<Pick<NodeJS.WritableStream, 'once'>>;
  if (typeof emitter.once === 'function') await once(emitter as NodeJS.WritableStream, 'drain');
}

/**
 * `stackline run <file>`: runs a pipeline on a stack, printing progress (or one JSON object with
 * `--json`). SIGINT/SIGTERM cancel the run: in-flight steps are aborted and the run ends `cancelled`.
 */
export async function runCommand(
  project: Project,
  file: string,
  options: RunCommandOptions,
  io: CliIo,
): Promise<number> {
  const config = options.config ? await readRunConfig(options.config, io.cwd) : undefined;
  const pipeline: PipelineDefinition = await loadPipeline(file, io.cwd, options.pipeline);
  const params = mergeParams(config?.parameters ?? {}, parseParamPairs(options.param));
  // Checked before the stack opens and before anything is recorded.
  pipeline.parseParameters(params);
  validateRunOptions(
    {
      params,
      tags: [...(config?.tags ?? []), ...options.tag],
      concurrency: options.concurrency ?? config?.concurrency,
    },
    pipeline.name,
  );
  const stack = await project.openStack(options.stack ?? config?.stack ?? project.activeStackName());
  const controller = new AbortController();
  let runId: string | undefined;
  let interrupts = 0;
  const onSignal = (signal: NodeJS.Signals) => {
    interrupts++;
    if (interrupts === 1) {
      io.stderr.write(`\n${signal}: cancelling the run (again to stop at once)…\n`);
      controller.abort(new Error(signal));
    } else {
      abandonNow(runId, stack.metadata);
      process.exit(ExitCode.Interrupted);
    }
  };
  // Last resort when the process exits while the run is still open (e.g. process.exit elsewhere).
  const onExit = () => abandonNow(runId, stack.metadata);
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);
  process.on('exit', onExit);
  try {
    const onEvent = options.json ? undefined : progressPrinter(io);
    const tags = [...(config?.tags ?? []), ...options.tag];
    const isStepFunctions = stack.components.orchestrator.type === 'step-functions';
    const result = isStepFunctions
      ? await (await import('../../orchestrators/step-functions-orchestrator.ts')).runOnStepFunctions(pipeline, stack, {
          params,
          tags,
          ...runCacheOptions(options, config),
          ...((options.concurrency ?? config?.concurrency) === undefined
            ? {}
            : { concurrency: (options.concurrency ?? config?.concurrency)! }),
          signal: controller.signal,
          ...(onEvent ? { onEvent } : {}),
        })
      : await runPipelineLocally(pipeline, stack, {
          params,
          cache: options.cache === false ? false : (config?.cache ?? undefined),
          stepCache: Object.fromEntries(
            Object.entries(config?.steps ?? {}).flatMap(([id, s]) => (s.cache === undefined ? [] : [[id, s.cache]])),
          ),
          concurrency: options.concurrency ?? config?.concurrency ?? stackConcurrency(stack.components),
          tags,
          stackName: stack.name,
          signal: controller.signal,
          onRunCreated: (id) => {
            runId = id;
          },
          // Nothing here reads them from memory (--json reads them back from the store in
          // batches): the run need not hold every step's result until it ends.
          keepResults: false,
          ...(onEvent ? { onEvent } : {}),
        });
    runId = undefined;
    if (options.json) {
      // A local run kept no step results (keepResults: false): read back a batch at a time.
      await writeRunSummary(io, result, stack.metadata, { fromStore: !isStepFunctions });
    } else {
      if (options.explain) printExplanations(io, await explainRun(stack.metadata, result.run.id));
      printOutputsHint(io, result.run);
    }
    if (result.run.status === 'completed') return ExitCode.Ok;
    return result.run.status === 'cancelled' ? ExitCode.Interrupted : ExitCode.Failed;
  } finally {
    process.off('SIGINT', onSignal);
    process.off('SIGTERM', onSignal);
    process.off('exit', onExit);
    await stack.close();
  }
}

function explainedStep(e: StepExplanation | undefined) {
  return e
    ? { verdict: e.verdict, summary: e.summary, changes: e.changes, comparedWith: e.comparedWith ?? null }
    : null;
}

/** The run's cache settings from `--no-cache` and the config file, as both orchestrators take them. */
function runCacheOptions(options: RunCommandOptions, config: RunConfig | undefined) {
  const cache = options.cache === false ? false : (config?.cache ?? undefined);
  const stepCache = Object.fromEntries(
    Object.entries(config?.steps ?? {}).flatMap(([id, s]) => (s.cache === undefined ? [] : [[id, s.cache]])),
  );
  return {
    ...(cache === undefined ? {} : { cache }),
    ...(Object.keys(stepCache).length > 0 ? { stepCache } : {}),
  };
}

function stackConcurrency(components: { orchestrator: { type: string; concurrency?: number } }): number | undefined {
  return components.orchestrator.type === 'local' ? components.orchestrator.concurrency : undefined;
}

function abandonNow(runId: string | undefined, metadata: unknown) {
  if (runId && metadata instanceof SqliteMetadataStore) {
    metadata.abandonSync([runId], 'cancelled', nowIso(), {
      type: 'Interrupted',
      message: 'The process was interrupted.',
    });
  }
}

function printOutputsHint(io: CliIo, run: PipelineRun) {
  const c = colors(io);
  io.stdout.write(`${run.id} ${run.status === 'completed' ? c.green(run.status) : c.red(run.status)}\n`);
  io.stderr.write(c.dim(`  details: stackline runs show ${run.id}\n`));
}
