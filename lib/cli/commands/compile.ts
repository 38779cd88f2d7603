import { mkdir, writeFile } from 'node:fs/promises';
import { dirname, relative, resolve } from 'node:path';
import { compileToAsl, type EcsRunnerOptions } from '../../compiler/compile-to-asl.ts';
import type { PipelineDefinition } from '../../dsl/pipeline.ts';
import { ValidationError } from '../../errors.ts';
import type { Project } from '../../stacks/project.ts';
import { ExitCode } from '../exit-codes.ts';
import { type CliIo, checkOutputFile, printJson } from '../io.ts';
import { loadPipeline } from '../load-pipeline.ts';

export interface CompileCommandOptions {
  pipeline?: string;
  out?: string;
  lambdaArn?: string;
  /** A registered stack whose `orchestrator.ecs` settings ECS steps compile against. */
  stack?: string;
  json?: boolean;
}

/** Each ECS setting, and where a deployed environment gives it (runner stack output, `stack register` flag). */
const ECS_SETTING_SOURCES: Array<[keyof EcsRunnerOptions, string, string]> = [
  ['clusterArn', 'EcsRunnerClusterArn', '--ecs-cluster-arn'],
  ['taskDefinitionArn', 'EcsRunnerTaskDefinitionArn', '--ecs-task-definition-arn'],
  ['containerName', 'EcsRunnerContainerName', '--ecs-container-name'],
  ['subnets', 'EcsRunnerSubnets', '--ecs-subnets'],
];

/**
 * The ECS settings for `pipeline`: none when it has no ECS step, else the stack's
 * `orchestrator.ecs`. @throws ValidationError naming the steps, each missing setting and where it comes from.
 */
async function ecsSettingsFor(
  pipeline: PipelineDefinition,
  stackName: string | undefined,
  project: Project | undefined,
): Promise<EcsRunnerOptions | undefined> {
  const ecsSteps = pipeline
    .build(pipeline.parseParameters({}))
    .nodes.filter((node) => node.spec.options.runner === 'ecs')
    .map((node) => `"${node.id}"`);
  if (ecsSteps.length === 0) return undefined;
  const components = stackName && project ? await project.stackComponents(stackName) : undefined;
  const ecs = components?.orchestrator.type === 'step-functions' ? components.orchestrator.ecs : undefined;
  if (ecs) return ecs;
  const missing = ECS_SETTING_SOURCES.map(
    ([setting, output, flag]) => `${setting} (runner stack output ${output}; stack register ${flag})`,
  );
  const where = stackName
    ? `stack "${stackName}" has no ECS settings (orchestrator.ecs)`
    : 'no stack with ECS settings was given (--stack NAME)';
  throw new ValidationError(
    `Pipeline "${pipeline.name}": step ${ecsSteps.join(', ')} ${ecsSteps.length === 1 ? 'runs' : 'run'} on ECS, but ${where}. Missing: ${missing.join(', ')}. Deploy an environment whose pipelines have ECS steps with \`stackline deploy --env ENV\` (it registers them), or register them by hand, then pass --stack.`,
    { context: { pipeline: pipeline.name, missing: ECS_SETTING_SOURCES.map(([setting]) => setting) } },
  );
}

/**
 * The step runner ARN used when `--lambda-arn` is not given: a placeholder in the account
 * `123456789012`, to be replaced at deploy time (the region comes from `AWS_REGION`).
 */
export function placeholderLambdaArn(env: NodeJS.ProcessEnv): string {
  const region = env.AWS_REGION || env.AWS_DEFAULT_REGION || 'us-east-1';
  return `arn:aws:lambda:${region}:123456789012:function:stackline-step-runner`;
}

/**
 * `stackline compile <file>`: compiles a pipeline to an AWS Step Functions definition (Amazon
 * States Language). Prints the definition on stdout, or writes it to `--out` and prints its size
 * and state count on stderr. With `--json`, stdout gets one summary object instead (with the
 * definition when there is no `--out`).
 */
export async function compileCommand(
  file: string,
  options: CompileCommandOptions,
  io: CliIo,
  project?: Project,
): Promise<number> {
  const pipeline = await loadPipeline(file, io.cwd, options.pipeline);
  const lambdaFunctionArn = options.lambdaArn ?? placeholderLambdaArn(io.env);
  const ecs = await ecsSettingsFor(pipeline, options.stack, project);
  const compiled = compileToAsl(pipeline, { lambdaFunctionArn, ...(ecs ? { ecs } : {}) });
  const summary = {
    pipeline: pipeline.name,
    stateCount: compiled.stateCount,
    sizeBytes: compiled.sizeBytes,
    lambdaFunctionArn,
    placeholderArn: options.lambdaArn === undefined,
  };

  if (options.out) {
    const path = resolve(io.cwd, options.out);
    checkOutputFile(path, { createsParent: true });
    await mkdir(dirname(path), { recursive: true });
    // The file is what gets deployed: compact, byte for byte what the size limit measured.
    await writeFile(path, `${compiled.json}\n`);
    if (options.json) printJson(io, { ...summary, out: path });
    else
      io.stderr.write(
        `Wrote ${displayPath(io.cwd, path)}: pipeline "${pipeline.name}", ${compiled.stateCount} states, ` +
          `${formatSize(compiled.sizeBytes)} (Step Functions accepts up to 1 MiB)\n`,
      );
  } else if (options.json) {
    printJson(io, { ...summary, definition: compiled.definition });
  } else {
    io.stdout.write(`${JSON.stringify(compiled.definition, null, 2)}\n`);
  }
  if (summary.placeholderArn && !options.json)
    io.stderr.write(
      `note: the step runner is the placeholder ${lambdaFunctionArn}; pass --lambda-arn for a real one\n`,
    );
  return ExitCode.Ok;
}

function displayPath(cwd: string, path: string): string {
  const rel = relative(cwd, path);
  return rel && !rel.startsWith('..') ? rel : path;
}

function formatSize(bytes: number): string {
  return bytes < 1024 ? `${bytes} B` : `${(bytes / 1024).toFixed(1)} KiB`;
}
