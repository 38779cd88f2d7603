/**
 * What the CDK app and the CLI agree on about a deployed pipeline: the state machine's name, the
 * alias runs start on, and the hash that tells whether a local pipeline is the deployed one.
 * No AWS or CDK imports: `infra/` and `lib/orchestrators/` both use it.
 */
import { createHash } from 'node:crypto';
import { type CompileOptions, compileToAsl } from '../compiler/compile-to-asl.ts';
import type { PipelineDefinition } from '../dsl/pipeline.ts';
import { ValidationError } from '../errors.ts';

/** Every deployed state machine has this alias; runs start on it (never on `$LATEST`). */
export const DEPLOYED_ALIAS = 'live';

/** Tag on each deployed state machine: {@link pipelineDefinitionHash} of the pipeline it was compiled from. */
export const DEFINITION_HASH_TAG = 'stackline:definition-sha256';

/** Tag on each deployed state machine naming the pipeline it runs. */
export const PIPELINE_TAG = 'stackline:pipeline';

/** Default prefix of deployed state machine names (`<prefix><pipeline>`). */
export const DEFAULT_STATE_MACHINE_PREFIX = 'stackline-';

/**
 * Settings the hash is compiled with. Deployment-specific values (the runner function's name, the
 * ECS cluster) are placeholders: the hash identifies the pipeline, not where it is deployed.
 */
const CANONICAL_COMPILE: CompileOptions = {
  lambdaFunctionArn: 'stackline-step-runner',
  ecs: {
    clusterArn: 'stackline-cluster',
    taskDefinitionArn: 'stackline-step-runner',
    containerName: 'step-runner',
    subnets: ['subnet-stackline'],
  },
};

/** `<prefix><pipeline>`: the state machine a pipeline is deployed as. */
export function stateMachineName(pipelineName: string, prefix: string = DEFAULT_STATE_MACHINE_PREFIX): string {
  return `${prefix}${pipelineName}`;
}

/**
 * SHA-256 of a pipeline's state machine definition, compiled with canonical settings from the
 * graph of the given parameters (default: the schema defaults). Equal hashes mean the same states,
 * wiring, retries, timeouts and runners. Step code is not part of it: a function's source text
 * depends on the TypeScript loader that printed it (tsx, vitest, esbuild), so a code hash would
 * differ between the CDK app and the CLI for identical code.
 *
 * @example
 * pipelineDefinitionHash(training); // '3f1c…' (64 hex digits)
 */
export function pipelineDefinitionHash(pipeline: PipelineDefinition, params?: unknown): string {
  const { json } = compileToAsl(pipeline, { ...CANONICAL_COMPILE, ...(params === undefined ? {} : { params }) });
  return createHash('sha256').update(json).digest('hex');
}

/**
 * A deployed state machine serves every run, so its graph is the one built from the pipeline's
 * default parameters. Parameters that change the graph's shape (steps, wiring, fan-outs) cannot be
 * honoured on Step Functions: this rejects them before anything starts.
 *
 * @throws ValidationError naming the pipeline and saying what to do instead.
 */
export function assertGraphIndependentOf(pipeline: PipelineDefinition, params: unknown): void {
  if (pipelineDefinitionHash(pipeline, params) === pipelineDefinitionHash(pipeline)) return;
  throw new ValidationError(
    `Pipeline "${pipeline.name}": these parameters change the pipeline's graph, but a deployed state machine runs the graph built from the default parameters. Run it locally, or make the choice inside a step (or a separate pipeline) instead of in the pipeline body.`,
    { context: { pipeline: pipeline.name } },
  );
}
