/**
 * The CLI's commands when it is connected to a Stackline API (`stackline login`, `--api`,
 * `STACKLINE_API_URL`): the same commands, going through the API instead of opening stores.
 */
import type { StacklineApiClient } from '../../api/client.ts';
import { apiClientFor } from '../../api/connect.ts';
import { ValidationError } from '../../errors.ts';
import { pipelineDefinitionHash } from '../../orchestrators/deployed-pipelines.ts';
import type { ApiConnection } from '../../stacks/api-connection.ts';
import { ExitCode } from '../exit-codes.ts';
import { type CliIo, colors, printJson, table } from '../io.ts';
import { loadPipeline } from '../load-pipeline.ts';
import { mergeParams, parseParamPairs, readRunConfig } from '../run-config.ts';
import { describeAuth } from './login.ts';
import { promotionRequest } from './model.ts';

const TERMINAL = new Set(['completed', 'failed', 'cancelled']);

/** `stack list` through the API: the team's stacks, from the deployment's registry. */
export async function remoteStackList(connection: ApiConnection, options: { json?: boolean }, io: CliIo) {
  const api = await apiClientFor(connection);
  const stacks = (await api.listStacks({ limit: 1000 })).items;
  if (options.json) return printJson(io, { api: connection.url, stacks });
  const rows = [['STACK', 'ORCHESTRATOR', 'TAGS']];
  for (const s of stacks) {
    const orchestrator = (s.components.orchestrator as { type?: string } | undefined)?.type ?? '-';
    rows.push([s.name, orchestrator, s.tags.join(',')]);
  }
  io.stdout.write(table(rows));
  io.stderr.write(colors(io).dim(`  from ${connection.url} (${describeAuth(connection)})\n`));
}

/** `stack describe NAME` through the API. */
export async function remoteStackDescribe(
  connection: ApiConnection,
  name: string | undefined,
  options: { json?: boolean },
  io: CliIo,
) {
  if (!name) throw new ValidationError('Name the stack: stackline stack describe NAME (see `stackline stack list`).');
  const stack = await (await apiClientFor(connection)).getStack({ stack: name });
  if (options.json) return printJson(io, stack);
  io.stdout.write(`${stack.name}\n`);
  if (stack.description) io.stdout.write(`  ${stack.description}\n`);
  for (const [k, v] of Object.entries(stack.components)) io.stdout.write(`  ${k.padEnd(18)} ${JSON.stringify(v)}\n`);
}

/**
 * `stackline run FILE` through the API (`POST /runs`): the pipeline is loaded here only to name it,
 * validate the parameters and send its compiled definition's hash (the API refuses with 409 when
 * the deployed one differs); the run happens where the API runs it. Progress comes from polling.
 */
export async function remoteRun(
  connection: ApiConnection,
  file: string,
  options: {
    pipeline?: string;
    param: string[];
    config?: string;
    cache: boolean;
    stack?: string;
    tag: string[];
    json?: boolean;
    pollIntervalMs?: number;
  },
  io: CliIo,
): Promise<number> {
  const config = options.config ? await readRunConfig(options.config, io.cwd) : undefined;
  const pipeline = await loadPipeline(file, io.cwd, options.pipeline);
  const params = mergeParams(config?.parameters ?? {}, parseParamPairs(options.param));
  pipeline.parseParameters(params);
  const api = await apiClientFor(connection);
  const stack = options.stack ?? config?.stack;
  const started = await api.startRun({
    pipeline: pipeline.name,
    ...(stack ? { stack } : {}),
    params,
    tags: [...(config?.tags ?? []), ...options.tag],
    ...(options.cache === false ? { cache: false } : {}),
    definitionSha256: pipelineDefinitionHash(pipeline),
  });
  if (!options.json) io.stderr.write(`${started.runId} started through ${connection.url} (${started.trigger})\n`);
  const run = await waitForRun(api, started.runId, options.pollIntervalMs ?? 1000, (seen) => {
    if (!options.json) io.stderr.write(`  ${seen}\n`);
  });
  if (options.json) printJson(io, { ...started, status: run.status, run });
  else io.stdout.write(`${run.id} ${run.status}\n`);
  if (run.status === 'completed') return ExitCode.Ok;
  return run.status === 'cancelled' ? ExitCode.Interrupted : ExitCode.Failed;
}

async function waitForRun(api: StacklineApiClient, runId: string, intervalMs: number, report: (line: string) => void) {
  const reported = new Map<string, string>();
  for (;;) {
    // The run record appears once the executor has created it (Step Functions: its start-run state).
    const detail = await api.getRun({ runId }).catch((error: unknown) => {
      if ((error as { status?: number }).status === 404) return undefined;
      throw error;
    });
    if (detail) {
      for (const step of detail.steps) {
        if (reported.get(step.id) === step.status) continue;
        reported.set(step.id, step.status);
        report(`${step.stepId} ${step.status}`);
      }
      if (TERMINAL.has(detail.run.status)) return detail.run;
    }
    await new Promise((r) => setTimeout(r, intervalMs));
  }
}

/** `runs list` through the API. */
export async function remoteRunsList(
  connection: ApiConnection,
  options: {
    pipeline?: string;
    status?: string;
    tag?: string;
    since?: string;
    until?: string;
    cursor?: string;
    limit: number;
    json?: boolean;
  },
  io: CliIo,
) {
  const { json, ...query } = options;
  const page = await (await apiClientFor(connection)).listRuns(query);
  if (json) return printJson(io, page);
  const rows = [['RUN', 'PIPELINE', 'STATUS', 'STARTED', 'BY']];
  for (const r of page.items) rows.push([r.id, r.pipeline, r.status, r.startedAt.slice(0, 19), r.createdBy]);
  io.stdout.write(table(rows));
  if (page.nextCursor) io.stderr.write(colors(io).dim(`  more: --cursor ${page.nextCursor}\n`));
}

/** `model promote` through the API: production goes to its own route (release managers). */
export async function remoteModelPromote(
  connection: ApiConnection,
  name: string,
  version: string,
  stage: string,
  options: { force?: boolean; reason?: string; expectedHolder?: string; json?: boolean },
  io: CliIo,
) {
  const { version: number, stage: to, options: body } = promotionRequest(version, stage, options);
  const api = await apiClientFor(connection);
  const params = { model: name, version: number };
  const { changes } =
    to === 'production'
      ? await api.promoteToProduction(params, body)
      : await api.setModelStage(params, { stage: to, ...body });
  if (options.json) return printJson(io, { changes });
  if (changes.length === 0) io.stdout.write(`${name} v${version} is already in ${stage}.\n`);
  for (const ch of changes)
    io.stdout.write(`${name} v${ch.versionNumber}: ${ch.fromStage ?? 'none'} → ${ch.toStage} (by ${ch.actor})\n`);
}

/**
 * `artifacts load NAME [VERSION]` through the API: a JSON or string value, its bytes fetched through
 * the download link the API hands out (no store credentials needed). Other kinds: load them from code.
 */
export async function remoteArtifactsLoad(
  connection: ApiConnection,
  name: string,
  version: string | undefined,
  options: { out?: string; json?: boolean },
  io: CliIo,
) {
  if (options.out)
    throw new ValidationError(
      '--out is not available through the API: download the link from GET /artifacts/{name}/versions/{version}/download.',
    );
  if (version !== undefined && version !== 'latest' && !/^[1-9][0-9]*$/.test(version))
    throw new ValidationError(`Version ${JSON.stringify(version)} is not a number ≥ 1 or "latest".`);
  const { RemoteStackline } = await import('../../api/remote-stackline.ts');
  const sl = RemoteStackline.over(await apiClientFor(connection));
  const found = await sl.getArtifactVersion(
    name,
    version === undefined || version === 'latest' ? 'latest' : Number(version),
  );
  if (found.materializer !== 'json' && found.materializer !== 'string') {
    throw new ValidationError(
      `${found.name} v${found.version} is ${found.dataType} (materializer "${found.materializer}"): load it from code (Stackline.open({ api }).loadArtifact).`,
    );
  }
  const value = await sl.loadArtifact(found.name, found.version);
  if (options.json || found.materializer !== 'string') printJson(io, value);
  else io.stdout.write(`${String(value)}\n`);
}
