import { createHash } from 'node:crypto';
import type { PipelineGraph, StepNode } from '../dsl/builder.ts';
import type { PipelineDefinition } from '../dsl/pipeline.ts';
import type { RetryPolicy } from '../dsl/types.ts';
import { PipelineDefinitionError, ValidationError } from '../errors.ts';
import { LAMBDA_TIMEOUT_EARLY_MS } from '../runtime/liveness.ts';
import type { StepRunnerRequest } from '../runtime/step-runner-protocol.ts';
import type {
  Catcher,
  MapState,
  PassState,
  PayloadTemplate,
  Retrier,
  State,
  StateMachineDefinition,
  StateMachineFragment,
  TaskState,
  Transition,
} from './asl-types.ts';
import {
  ECS_RUN_TASK,
  type EcsRunnerOptions,
  ecsHeartbeatSeconds,
  ecsOptionProblems,
  ecsRunTaskParameters,
  fargateProblems,
} from './ecs-task.ts';

export { ECS_REQUEST_ENV, ECS_TASK_TOKEN_ENV, type EcsRunnerOptions } from './ecs-task.ts';

/** Limits of AWS Step Functions (and of the runners) that a compiled pipeline must respect. */
export const STEP_FUNCTIONS_LIMITS = {
  /** Maximum size of a state machine definition. */
  definitionBytes: 1_048_576,
  /** Maximum length of a state name. */
  stateNameLength: 80,
  /** A Lambda invocation stops after 15 minutes. */
  lambdaTimeoutSeconds: 900,
  /** Maximum `TimeoutSeconds`, `IntervalSeconds` and `MaxAttempts`. */
  maxSeconds: 99_999_999,
  /** Maximum `MaxDelaySeconds` of a retrier (one year). */
  maxDelaySeconds: 31_622_400,
  /** Maximum `MaxConcurrency` of a Distributed Map. */
  distributedMapConcurrency: 10_000,
} as const;

export interface CompileOptions {
  /** The step runner Lambda function (name, ARN or alias ARN). Every bookkeeping call and every `lambda` step invokes it. */
  lambdaFunctionArn: string;
  /**
   * The deployed step runner function's timeout, in seconds (default 900, Lambda's maximum). A
   * `lambda` step's `timeoutMs` must fit in it minus the runner's early answer
   * ({@link LAMBDA_TIMEOUT_EARLY_MS}); its Task waits this long (see {@link compileGraphToAsl}).
   */
  lambdaTimeoutSeconds?: number;
  /** Required when a step declares `runner: 'ecs'`. */
  ecs?: EcsRunnerOptions;
  /**
   * Parameters the pipeline body is run with to get its graph. Default: the pipeline's schema
   * defaults. The compiled state machine serves every run, whatever parameters the run gets, so
   * the graph's SHAPE (steps, ids, wiring, fan-outs) must not depend on parameters; parameter
   * values only reach steps at run time (`start-run` records them, the runner resolves them).
   */
  params?: unknown;
  /**
   * Fan-outs wider than this run as a Distributed Map reading its items from S3; narrower ones as
   * an inline Map. Default 40 (an inline Map runs at most 40 iterations at once). The width is
   * only known at run time, so the step runner decides (its `plan-map` answer holds either
   * `items` or `itemsBucket`/`itemsKey`) and the state machine holds both paths behind a
   * `Choice`; the runner must be configured with the same threshold (its
   * `STACKLINE_DISTRIBUTED_MAP_THRESHOLD`). `0` compiles the
   * Distributed Map path only (smaller definition; the runner must then always answer with an S3
   * item list).
   */
  distributedMapThreshold?: number;
  /** `MaxConcurrency` of fan-outs that set none. Default 10; `0` means no limit. */
  defaultMapConcurrency?: number;
  /** The definition's top-level `Comment`. Default: names the pipeline and the execution input. */
  comment?: string;
}

export interface CompiledStateMachine {
  definition: StateMachineDefinition;
  /**
   * `definition` serialized once, compactly (what is deployed and what the 1 MiB limit measures),
   * keys in a fixed order. Deterministic. Indent it only for people: it costs ~40% more bytes.
   */
  json: string;
  /** UTF-8 size of `json`. */
  sizeBytes: number;
  /** Every state, including those inside Parallel branches and Map item processors. */
  stateCount: number;
}

const LAMBDA_INVOKE = 'arn:aws:states:::lambda:invoke';
const S3_GET_OBJECT = 'arn:aws:states:::s3:getObject';
const DEFAULT_DISTRIBUTED_MAP_THRESHOLD = 40;
const DEFAULT_MAP_CONCURRENCY = 10;
/** What `start-run` throws for a redelivered event (`DuplicateTriggerError`'s name). */
export const DUPLICATE_TRIGGER_ERROR = 'DuplicateTriggerError';
/** The `Error` of the `Fail` state a failed run ends in. */
export const RUN_FAILED_ERROR = 'StepFailed';

/** AWS's recommended retrier for transient Lambda service errors (not errors the function throws). */
const LAMBDA_SERVICE_RETRIER: Retrier = {
  ErrorEquals: [
    'Lambda.ServiceException',
    'Lambda.AWSLambdaException',
    'Lambda.SdkClientException',
    'Lambda.TooManyRequestsException',
  ],
  IntervalSeconds: 1,
  MaxAttempts: 3,
  BackoffRate: 2,
};

/**
 * Transient failures of the runner's own bookkeeping, retried on every Lambda Task state with full
 * jitter so that many Map items throttled at once do not retry in lockstep: DynamoDB throttling and
 * transaction conflicts (and the ConflictError the store raises after losing too many races), S3
 * SlowDown, and a duplicate delivery waiting for the attempt that holds the step's lease.
 */
export const TRANSIENT_RETRIER: Retrier = {
  ErrorEquals: [
    'StepInProgressError',
    'ConflictError',
    'ThrottlingException',
    'ProvisionedThroughputExceededException',
    'RequestLimitExceeded',
    'TransactionConflictException',
    'TransactionCanceledException',
    'InternalServerError',
    'SlowDown',
    'ServiceUnavailable',
  ],
  IntervalSeconds: 1,
  MaxAttempts: 6,
  BackoffRate: 2,
  MaxDelaySeconds: 30,
  JitterStrategy: 'FULL',
};

/**
 * Compiles a pipeline into an AWS Step Functions state machine (Amazon States Language).
 *
 * The machine only moves identifiers: every step is a call to the step runner (see
 * `lib/runtime/step-runner-protocol.ts`) with the run id and the step id, outputs stay in the
 * artifact store, and every state discards its task's result, so the state stays a few hundred
 * bytes whatever the pipeline moves. The DAG keeps its own shape: chains stay chains, independent
 * branches become `Parallel` states that join where the branches meet, fan-outs become `Map`
 * states (see {@link compileGraphToAsl} for the whole shape).
 *
 * Execution input: `{ "pipeline": "<name>", "parameters": { ... }, "tags"?: ["k:v"], "runId"?: "<id>" }`.
 * `parameters` is required (`{}` for the defaults); `tags` (recorded on the run) default to none; `runId` is optional: the CLI passes it when it
 * created the run record itself, otherwise `start-run` creates one.
 *
 * Steps with `runner: 'lambda'` (the default) run with the runner function's memory and timeout:
 * their `resources` are the function's configuration, not per step.
 *
 * @throws ValidationError when `options` are invalid, or the pipeline's default parameters do not validate
 * @throws PipelineDefinitionError when the pipeline cannot be expressed in Step Functions (every problem listed)
 *   or the definition exceeds a Step Functions limit (1 MiB)
 * @example
 * const { json, sizeBytes } = compileToAsl(training, {
 *   lambdaFunctionArn: 'arn:aws:lambda:eu-west-1:123456789012:function:stackline-step-runner',
 * });
 * await sfn.send(new CreateStateMachineCommand({ name: 'training', definition: json, roleArn }));
 */
export function compileToAsl(pipeline: PipelineDefinition, options: CompileOptions): CompiledStateMachine {
  let params: unknown;
  try {
    params = pipeline.parseParameters(options.params ?? {});
  } catch (error) {
    if (!(error instanceof ValidationError) || options.params !== undefined) throw error;
    throw new ValidationError(
      `Cannot compile pipeline "${pipeline.name}": its graph is built with the default parameters, which do not validate (${error.message}). Give every pipeline parameter a default, or pass \`params\`.`,
      { cause: error, context: { pipeline: pipeline.name } },
    );
  }
  return compileGraphToAsl(pipeline.build(params), pipeline.name, options);
}

/**
 * Compiles a built pipeline graph (see {@link compileToAsl}; this entry point lets tests build
 * graphs directly, e.g. with fan-outs).
 *
 * Shape: `HasTags` → (`DefaultTags`) → `HasRunId` (a Choice: the execution input may carry a `runId`) → `StartRun` |
 * `StartRunWithRunId` → the steps → `FinishRun` → `Succeeded`. The steps follow the DAG,
 * decomposed into chains and Parallels (see {@link planGraph}); a step is `Step_<id>` (an ECS
 * step is preceded by `Request_<id>`, a Pass building the request its container reads), a fan-out
 * is `PlanMap_<id>` → `ChooseMap_<id>` → `Map_<id>` (inline) | `DistributedMap_<id>` →
 * `CollectMap_<id>`. Every top-level state after `StartRun` catches `States.ALL` into
 * `$.error` → `RecordFailure` (finish-run `failed` with the error) → `HasFailureCause` → `Failed`
 * (`Error: "StepFailed"`, `CausePath: "$.error.Cause"`) or `FailedWithoutCause`. States inside
 * Parallel branches and Map iterations have no Catch: their errors end the enclosing top-level
 * state, whose Catch handles them.
 *
 * Retries: a step's `retries` become a retrier on `States.TaskFailed` and `States.Timeout`
 * (the local orchestrator retries timeouts too; `TimeoutSeconds` applies per attempt), preceded
 * by `{ ErrorEquals: ['NonRetriableError'], MaxAttempts: 0 }` so that a `NonRetriableError`
 * (the Lambda runner's error type; an ECS task sends the same name with `SendTaskFailure`, see
 * `ecs-task.ts`) is never retried, then the runner's transient errors. Lambda tasks also retry
 * Lambda's transient service errors; ECS tasks send heartbeats (`HeartbeatSeconds`). The runner does not
 * retry in-process when Step Functions invokes it: retrying is the state machine's job.
 * `plan-map` and `collect-map` always run on the Lambda runner, whatever the step's runner.
 */
export function compileGraphToAsl(
  graph: PipelineGraph,
  pipelineName: string,
  options: CompileOptions,
): CompiledStateMachine {
  const settings = resolveOptions(options);
  checkGraphStructure(graph, pipelineName);
  const problems = collectProblems(graph, settings);
  if (problems.length > 0) throw compileError(pipelineName, problems);

  const plan = planGraph(graph);
  const definition = new Renderer(graph, pipelineName, settings).render(plan);

  const stateNames = listStateNames(definition);
  const nameProblems = stateNames.flatMap(checkStateName);
  if (nameProblems.length > 0) throw compileError(pipelineName, nameProblems);

  const json = JSON.stringify(definition);
  const sizeBytes = Buffer.byteLength(json, 'utf8');
  if (sizeBytes > STEP_FUNCTIONS_LIMITS.definitionBytes) {
    throw new PipelineDefinitionError(
      `Pipeline "${pipelineName}" compiles to a state machine definition of ${sizeBytes.toLocaleString('en-US')} bytes ` +
        `(${stateNames.length} states for ${graph.nodes.length} steps), over the Step Functions limit of ` +
        `${STEP_FUNCTIONS_LIMITS.definitionBytes.toLocaleString('en-US')} bytes (1 MiB). Split it into smaller pipelines, ` +
        'or run repeated work as one fan-out step (a map) instead of one step per item.',
      {
        context: {
          pipeline: pipelineName,
          sizeBytes,
          limitBytes: STEP_FUNCTIONS_LIMITS.definitionBytes,
          stateCount: stateNames.length,
        },
      },
    );
  }
  return { definition, json, sizeBytes, stateCount: stateNames.length };
}

// --- options and checks ---------------------------------------------------------------------

interface Settings {
  lambdaFunctionArn: string;
  lambdaTimeoutSeconds: number;
  ecs: EcsRunnerOptions | undefined;
  /** false: Distributed Map only. */
  inlineMaps: boolean;
  defaultMapConcurrency: number;
  comment: string | undefined;
}

function resolveOptions(options: CompileOptions): Settings {
  const problems: string[] = [];
  const nonEmpty = (value: unknown) => typeof value === 'string' && value.length > 0;
  if (!nonEmpty(options.lambdaFunctionArn)) problems.push('lambdaFunctionArn must be a non-empty string.');
  const ecs = options.ecs;
  if (ecs) problems.push(...ecsOptionProblems(ecs));
  const lambdaTimeoutSeconds = options.lambdaTimeoutSeconds ?? STEP_FUNCTIONS_LIMITS.lambdaTimeoutSeconds;
  if (
    !Number.isInteger(lambdaTimeoutSeconds) ||
    lambdaTimeoutSeconds < 1 ||
    lambdaTimeoutSeconds > STEP_FUNCTIONS_LIMITS.lambdaTimeoutSeconds
  )
    problems.push(
      `lambdaTimeoutSeconds must be a whole number from 1 to ${STEP_FUNCTIONS_LIMITS.lambdaTimeoutSeconds} (got ${lambdaTimeoutSeconds}).`,
    );
  const threshold = options.distributedMapThreshold ?? DEFAULT_DISTRIBUTED_MAP_THRESHOLD;
  if (!Number.isInteger(threshold) || threshold < 0)
    problems.push(`distributedMapThreshold must be a whole number ≥ 0 (got ${threshold}).`);
  const concurrency = options.defaultMapConcurrency ?? DEFAULT_MAP_CONCURRENCY;
  if (!isMapConcurrency(concurrency))
    problems.push(
      `defaultMapConcurrency must be a whole number from 0 to ${STEP_FUNCTIONS_LIMITS.distributedMapConcurrency} (got ${concurrency}).`,
    );
  if (problems.length > 0) {
    throw new ValidationError(`Invalid compile options:\n${problems.map((p) => `  - ${p}`).join('\n')}`, {
      context: { problems },
    });
  }
  return {
    lambdaFunctionArn: options.lambdaFunctionArn,
    lambdaTimeoutSeconds,
    ecs,
    inlineMaps: threshold > 0,
    defaultMapConcurrency: concurrency,
    comment: options.comment,
  };
}

function isMapConcurrency(value: number): boolean {
  return Number.isInteger(value) && value >= 0 && value <= STEP_FUNCTIONS_LIMITS.distributedMapConcurrency;
}

function compileError(pipeline: string, problems: string[]): PipelineDefinitionError {
  return new PipelineDefinitionError(
    `Pipeline "${pipeline}" cannot be compiled to Step Functions:\n${problems.map((p) => `  - ${p}`).join('\n')}`,
    { context: { pipeline, problems } },
  );
}

/** Graphs from the DSL always pass; hand-built ones (tests, other front ends) may not. */
function checkGraphStructure(graph: PipelineGraph, pipeline: string): void {
  const problems: string[] = [];
  if (graph.nodes.length === 0) problems.push('the graph has no steps.');
  const seen = new Set<string>();
  for (const node of graph.nodes) {
    if (seen.has(node.id)) problems.push(`step id "${node.id}" appears twice.`);
    for (const dep of node.upstream) {
      if (!seen.has(dep)) {
        problems.push(
          graph.byId.has(dep)
            ? `step "${node.id}" comes before its upstream step "${dep}": graph.nodes must be in topological order.`
            : `step "${node.id}" depends on unknown step "${dep}".`,
        );
      }
    }
    seen.add(node.id);
  }
  if (problems.length > 0) throw compileError(pipeline, problems);
}

function retryPolicy(retries: number | RetryPolicy | undefined): Required<RetryPolicy> {
  // Same defaults as the local orchestrator (lib/runtime/step-executor.ts).
  const policy = typeof retries === 'number' ? { maxRetries: retries } : (retries ?? { maxRetries: 0 });
  return { backoffMs: 1000, backoffRate: 2, maxBackoffMs: 60_000, ...policy };
}

/** Every reason the graph cannot run on Step Functions as configured, so the user sees them all at once. */
function collectProblems(graph: PipelineGraph, settings: Settings): string[] {
  const problems: string[] = [];
  const ecsSteps: string[] = [];
  for (const node of graph.nodes) {
    const where = `step "${node.id}"`;
    const { runner = 'lambda', timeoutMs, resources } = node.spec.options;
    if (runner !== 'lambda' && runner !== 'ecs') {
      problems.push(`${where} has runner ${JSON.stringify(runner)}: use 'lambda' or 'ecs'.`);
      continue;
    }
    if (runner === 'ecs' && !settings.ecs) ecsSteps.push(node.id);
    if (resources?.gpu)
      problems.push(
        `${where} asks for ${resources.gpu} GPU(s), but neither Lambda nor ECS on Fargate offers GPUs. Remove resources.gpu, or run the step elsewhere.`,
      );
    if (runner === 'ecs') problems.push(...fargateProblems(where, resources));

    if (timeoutMs !== undefined) {
      if (!(Number.isFinite(timeoutMs) && timeoutMs > 0)) {
        problems.push(`${where} has timeoutMs ${timeoutMs}: use a positive number of milliseconds.`);
      } else {
        const seconds = Math.ceil(timeoutMs / 1000);
        // The runner answers LAMBDA_TIMEOUT_EARLY_MS before the function's timeout (then exits):
        // a step must time out, and be recorded as timed out, before that.
        const lambdaLimitMs = settings.lambdaTimeoutSeconds * 1000 - LAMBDA_TIMEOUT_EARLY_MS;
        if (runner === 'lambda' && timeoutMs > lambdaLimitMs)
          problems.push(
            `${where} has timeoutMs ${timeoutMs} (${seconds} s), but the step runner Lambda stops after ${settings.lambdaTimeoutSeconds} s ` +
              `and answers ${LAMBDA_TIMEOUT_EARLY_MS} ms before that: use timeoutMs ≤ ${lambdaLimitMs}, raise the function's timeout ` +
              "(the environment's runner.timeoutSeconds), or set runner: 'ecs' for long steps.",
          );
        if (seconds > STEP_FUNCTIONS_LIMITS.maxSeconds)
          problems.push(
            `${where} has timeoutMs ${timeoutMs}: Step Functions accepts at most ${STEP_FUNCTIONS_LIMITS.maxSeconds} s.`,
          );
      }
    }

    const policy = retryPolicy(node.spec.options.retries);
    if (
      !Number.isInteger(policy.maxRetries) ||
      policy.maxRetries < 0 ||
      policy.maxRetries > STEP_FUNCTIONS_LIMITS.maxSeconds
    )
      problems.push(`${where} has retries.maxRetries ${policy.maxRetries}: use a whole number ≥ 0.`);
    if (policy.maxRetries > 0) {
      if (!(Number.isFinite(policy.backoffRate) && policy.backoffRate >= 1))
        problems.push(
          `${where} has retries.backoffRate ${policy.backoffRate}, but Step Functions requires a BackoffRate ≥ 1 (delays never shrink). Use 1 for a constant delay.`,
        );
      if (!(Number.isFinite(policy.backoffMs) && policy.backoffMs >= 0))
        problems.push(`${where} has retries.backoffMs ${policy.backoffMs}: use a number ≥ 0.`);
      if (!(policy.maxBackoffMs > 0 && Math.ceil(policy.maxBackoffMs / 1000) <= STEP_FUNCTIONS_LIMITS.maxDelaySeconds))
        problems.push(
          `${where} has retries.maxBackoffMs ${policy.maxBackoffMs}: Step Functions accepts a maximum delay from 1 s to ${STEP_FUNCTIONS_LIMITS.maxDelaySeconds} s.`,
        );
    }

    if (node.map) {
      if (!(node.map.input in node.inputs))
        problems.push(
          `${where} fans out over input "${node.map.input}", which is not one of its connected inputs (${Object.keys(node.inputs).join(', ') || 'none'}).`,
        );
      const concurrency = node.map.maxConcurrency;
      if (concurrency !== undefined && !isMapConcurrency(concurrency))
        problems.push(
          `${where} has map.maxConcurrency ${concurrency}: use a whole number from 0 (no limit) to ${STEP_FUNCTIONS_LIMITS.distributedMapConcurrency} (the Distributed Map maximum).`,
        );
    }
  }
  if (ecsSteps.length > 0) {
    problems.push(
      `${ecsSteps.map((id) => `step "${id}"`).join(', ')} ${ecsSteps.length === 1 ? 'uses' : 'use'} runner 'ecs', but no ECS settings were given: pass options.ecs ({ clusterArn, taskDefinitionArn, containerName, subnets }; the runner stack's Ecs* outputs).`,
    );
  }
  return problems;
}

// --- DAG decomposition ----------------------------------------------------------------------

/** How steps are arranged: a step, steps one after another, or independent branches. */
export type ExecutionPlan =
  | { kind: 'step'; node: StepNode }
  | { kind: 'sequence'; items: ExecutionPlan[] }
  | { kind: 'parallel'; branches: ExecutionPlan[] };

/**
 * Arranges the DAG into sequences and parallel branches that respect every edge, keeping the
 * DAG's own structure: on the partial order "a before b" (the DAG's transitive closure),
 * - a set of steps with no edge between two of its parts runs as parallel branches (its weakly
 *   connected components, in definition order);
 * - a connected set splits into a sequence at every series cut: a point where every step before
 *   it is an ancestor of every step after it (found in one pass over the topological order);
 * - each part is arranged the same way, recursively.
 * For series-parallel (N-free) DAGs this adds no dependency the DAG does not have. A connected
 * set with no series cut contains an "N" (a→c, a→d, b→d) that sequences and branches cannot
 * express exactly; it is split into a sequence of two parts at a topological-order cut (all of the
 * first part runs before the second), and each part is arranged recursively. The cut chosen is the
 * one whose imposed orderings are least often false (a step waiting for one it does not depend
 * on), ties going to the most balanced cut; this keeps the extra waiting small and the recursion
 * shallow. Always correct: every step starts after all its upstream steps.
 */
export function planGraph(graph: PipelineGraph): ExecutionPlan {
  const index = new Map(graph.nodes.map((n, i) => [n.id, i]));
  const preds = graph.nodes.map((n) => [...new Set(n.upstream.map((id) => index.get(id)!))]);
  const succs: number[][] = graph.nodes.map(() => []);
  preds.forEach((ps, v) => {
    for (const p of ps) succs[p]!.push(v);
  });
  const planner = new Planner(graph.nodes, preds, succs);
  return planner.plan(graph.nodes.map((_, i) => i));
}

class Planner {
  /** `mark[v] === stamp` while v belongs to the region being split; `pos[v]` is its position there. */
  private readonly mark: Int32Array;
  private readonly pos: Int32Array;
  private stamp = 0;

  constructor(
    private readonly nodes: StepNode[],
    private readonly preds: number[][],
    private readonly succs: number[][],
  ) {
    this.mark = new Int32Array(nodes.length);
    this.pos = new Int32Array(nodes.length);
  }

  /** `region` holds node indexes in ascending (topological) order; all its outside dependencies are done. */
  plan(region: number[]): ExecutionPlan {
    if (region.length === 1) return { kind: 'step', node: this.nodes[region[0]!]! };
    this.stamp++;
    region.forEach((v, i) => {
      this.mark[v] = this.stamp;
      this.pos[v] = i;
    });
    const localPreds = region.map((v) =>
      this.preds[v]!.filter((u) => this.mark[u] === this.stamp).map((u) => this.pos[u]!),
    );
    const localSuccs = region.map((v) =>
      this.succs[v]!.filter((u) => this.mark[u] === this.stamp).map((u) => this.pos[u]!),
    );

    const components = connectedComponents(localPreds, localSuccs);
    if (components.length > 1) {
      const groups = components.map((c) => c.map((i) => region[i]!));
      return { kind: 'parallel', branches: groups.map((g) => this.plan(g)) };
    }
    let cuts = seriesCuts(localPreds, localSuccs);
    if (cuts.length === 0) cuts = [leastFalseDependencyCut(localPreds)];
    const parts: number[][] = [];
    let start = 0;
    for (const cut of [...cuts, region.length]) {
      parts.push(region.slice(start, cut));
      start = cut;
    }
    const items = parts.map((p) => this.plan(p)).flatMap((p) => (p.kind === 'sequence' ? p.items : [p]));
    return { kind: 'sequence', items };
  }
}

/** Weakly connected components, each listed in ascending position, ordered by their first position. */
function connectedComponents(preds: number[][], succs: number[][]): number[][] {
  const component = new Int32Array(preds.length).fill(-1);
  const components: number[][] = [];
  for (let start = 0; start < preds.length; start++) {
    if (component[start] !== -1) continue;
    const id = components.length;
    const members: number[] = [];
    const stack = [start];
    component[start] = id;
    while (stack.length > 0) {
      const v = stack.pop()!;
      members.push(v);
      for (const neighbours of [preds[v]!, succs[v]!]) {
        for (const w of neighbours) {
          if (component[w] === -1) {
            component[w] = id;
            stack.push(w);
          }
        }
      }
    }
    components.push(members.sort((a, b) => a - b));
  }
  return components;
}

/**
 * Positions k (0 < k < n) where every one of the first k nodes is an ancestor of every later
 * node. Any such split is a prefix of every topological order, so one order finds them all. It
 * holds exactly when each maximal node of the prefix has a direct edge to each minimal node of
 * the rest (a longer path would pass through a node that contradicts maximality or minimality),
 * which the scan maintains incrementally.
 */
function seriesCuts(preds: number[][], succs: number[][]): number[] {
  const n = preds.length;
  const predsInSuffix = Int32Array.from(preds, (p) => p.length);
  const minimalOfSuffix = new Set<number>();
  for (let v = 0; v < n; v++) if (predsInSuffix[v] === 0) minimalOfSuffix.add(v);
  const maximalOfPrefix = new Uint8Array(n);
  let maximalCount = 0;
  const cuts: number[] = [];
  for (let k = 1; k < n; k++) {
    const moved = k - 1; // topological order: all its predecessors are already in the prefix
    minimalOfSuffix.delete(moved);
    for (const s of succs[moved]!) if (--predsInSuffix[s]! === 0) minimalOfSuffix.add(s);
    for (const p of preds[moved]!) {
      if (maximalOfPrefix[p]) {
        maximalOfPrefix[p] = 0;
        maximalCount--;
      }
    }
    maximalOfPrefix[moved] = 1;
    maximalCount++;
    let isCut = true;
    for (const m of minimalOfSuffix) {
      const ps = preds[m]!;
      if (ps.length < maximalCount || ps.reduce((c, p) => c + maximalOfPrefix[p]!, 0) !== maximalCount) {
        isCut = false;
        break;
      }
    }
    if (isCut) cuts.push(k);
  }
  return cuts;
}

/**
 * For a connected set without a series cut: the topological-order prefix length k for which
 * running the prefix entirely before the rest imposes the smallest share of false orderings:
 * falsePairs(k) / (k·(n−k)), where falsePairs(k) = k·(n−k) − #{(a, u) : a < k ≤ u, a is an
 * ancestor of u}. Ancestor sets are bitsets; pairs are counted for all k at once with a
 * difference array, O(n²/32 + ancestor pairs).
 */
function leastFalseDependencyCut(preds: number[][]): number {
  const n = preds.length;
  const words = Math.ceil(n / 32);
  const ancestors = new Uint32Array(n * words);
  const diff = new Float64Array(n + 2);
  for (let u = 0; u < n; u++) {
    const row = u * words;
    for (const p of preds[u]!) {
      const from = p * words;
      for (let w = 0; w < words; w++) ancestors[row + w]! |= ancestors[from + w]!;
      ancestors[row + (p >>> 5)]! |= 1 << (p & 31);
    }
    for (let w = 0; w < words; w++) {
      let bits = ancestors[row + w]!;
      while (bits !== 0) {
        const low = bits & -bits;
        const a = w * 32 + 31 - Math.clz32(low);
        diff[a + 1]!++;
        diff[u + 1]!--;
        bits ^= low;
      }
    }
  }
  let best = 1;
  let bestRatio = Number.POSITIVE_INFINITY;
  let covered = 0;
  for (let k = 1; k < n; k++) {
    covered += diff[k]!;
    const ratio = (k * (n - k) - covered) / (k * (n - k));
    if (ratio < bestRatio || (ratio === bestRatio && Math.abs(2 * k - n) < Math.abs(2 * best - n))) {
      best = k;
      bestRatio = ratio;
    }
  }
  return best;
}

// --- rendering ------------------------------------------------------------------------------

type Action = StepRunnerRequest['action'];

/** The states one step compiles to. */
interface StepStates {
  /** The first state: `Request_` (ECS), `PlanMap_` (fan-out) or `Step_`. */
  entry: string;
  step: string;
  request?: string;
  map?: {
    key: string;
    plan: string;
    choose?: string;
    inline?: { map: string; step: string; request?: string };
    distributed: { map: string; step: string; request?: string };
    collect: string;
  };
}

/** Claims unique, valid state names (ASL: at most 80 characters, unique in the whole machine). */
class StateNames {
  private readonly used = new Set<string>();

  claim(base: string): string {
    const clean = base.replace(/[^A-Za-z0-9_-]/g, '_');
    let name = withinLimit(clean, '');
    for (let n = 2; this.used.has(name); n++) name = withinLimit(clean, `_${n}`);
    this.used.add(name);
    return name;
  }
}

/** `base + suffix` within the length limit; a long base keeps a hash of itself so names stay distinct. */
function withinLimit(base: string, suffix: string): string {
  const max = STEP_FUNCTIONS_LIMITS.stateNameLength;
  if (base.length + suffix.length <= max) return base + suffix;
  const hash = createHash('sha256').update(base).digest('hex').slice(0, 8);
  return `${base.slice(0, max - suffix.length - hash.length - 1)}_${hash}${suffix}`;
}

function transition(next: string | undefined): Transition {
  return next === undefined ? { End: true } : { Next: next };
}

class Renderer {
  private readonly names = new StateNames();
  private readonly stepStates = new Map<string, StepStates>();
  private readonly parallelNames = new Map<ExecutionPlan, string>();

  constructor(
    private readonly graph: PipelineGraph,
    private readonly pipeline: string,
    private readonly settings: Settings,
  ) {}

  render(plan: ExecutionPlan): StateMachineDefinition {
    // Names are claimed in a fixed order (fixed states, steps in topological order, Parallels in
    // pre-order), so they do not depend on anything but the graph.
    const fixed = {
      hasTags: this.names.claim('HasTags'),
      defaultTags: this.names.claim('DefaultTags'),
      hasRunId: this.names.claim('HasRunId'),
      startRun: this.names.claim('StartRun'),
      startRunWithRunId: this.names.claim('StartRunWithRunId'),
      duplicateTrigger: this.names.claim('DuplicateTrigger'),
      finishRun: this.names.claim('FinishRun'),
      succeeded: this.names.claim('Succeeded'),
      recordFailure: this.names.claim('RecordFailure'),
      hasCause: this.names.claim('HasFailureCause'),
      failed: this.names.claim('Failed'),
      failedWithoutCause: this.names.claim('FailedWithoutCause'),
    };
    for (const node of this.graph.nodes) this.stepStates.set(node.id, this.claimStepStates(node));
    this.claimParallelNames(plan);

    const catchAll: Catcher[] = [{ ErrorEquals: ['States.ALL'], ResultPath: '$.error', Next: fixed.recordFailure }];
    const startRun = (withRunId: boolean): TaskState => ({
      Type: 'Task',
      Resource: LAMBDA_INVOKE,
      Parameters: this.invoke(
        this.request('start-run', {
          'parameters.$': '$.parameters',
          'tags.$': '$.tags',
          ...(withRunId ? { 'runId.$': '$.runId' } : {}),
          'executionArn.$': '$$.Execution.Id',
          // The whole execution input: run options (tags, cache settings) when the CLI started it.
          'input.$': '$',
        }),
      ),
      ResultSelector: { 'runId.$': '$.Payload.runId' },
      ResultPath: '$.run',
      // No catch-all: without a run record there is nothing to mark failed. A redelivered event
      // (its run exists) ends the execution without starting anything.
      Retry: [LAMBDA_SERVICE_RETRIER, TRANSIENT_RETRIER],
      Catch: [{ ErrorEquals: [DUPLICATE_TRIGGER_ERROR], ResultPath: '$.duplicate', Next: fixed.duplicateTrigger }],
      Next: this.entry(plan),
    });
    const finishRun = (status: 'completed' | 'failed'): PayloadTemplate =>
      this.invoke(
        this.request('finish-run', {
          'runId.$': '$.run.runId',
          status,
          ...(status === 'failed' ? { 'error.$': '$.error' } : {}),
        }),
      );
    const states: Record<string, State> = {
      // `tags` is optional in the execution input (schedules and rules may not send it); a
      // JSONPath on a missing field would fail the execution, so default it to [] first.
      [fixed.hasTags]: {
        Type: 'Choice',
        Choices: [{ Variable: '$.tags', IsPresent: true, Next: fixed.hasRunId }],
        Default: fixed.defaultTags,
      },
      [fixed.defaultTags]: { Type: 'Pass', Result: [], ResultPath: '$.tags', Next: fixed.hasRunId },
      [fixed.hasRunId]: {
        Type: 'Choice',
        Choices: [{ Variable: '$.runId', IsPresent: true, Next: fixed.startRunWithRunId }],
        Default: fixed.startRun,
      },
      [fixed.startRun]: startRun(false),
      [fixed.startRunWithRunId]: startRun(true),
      [fixed.duplicateTrigger]: { Type: 'Succeed', Comment: 'A redelivered event: its run already exists.' },
    };
    this.renderPlan(plan, states, fixed.finishRun, catchAll);
    Object.assign(states, {
      [fixed.finishRun]: {
        Type: 'Task',
        Resource: LAMBDA_INVOKE,
        Parameters: finishRun('completed'),
        ResultPath: null,
        Retry: [LAMBDA_SERVICE_RETRIER, TRANSIENT_RETRIER],
        Catch: catchAll,
        Next: fixed.succeeded,
      },
      [fixed.succeeded]: { Type: 'Succeed' },
      [fixed.recordFailure]: {
        Type: 'Task',
        Resource: LAMBDA_INVOKE,
        Parameters: finishRun('failed'),
        ResultPath: null,
        Retry: [LAMBDA_SERVICE_RETRIER, TRANSIENT_RETRIER],
        // Recording the failure must not strand the execution: if it cannot be recorded, the
        // execution still fails, and the status-change handler or `runs reap` ends the run.
        Catch: [{ ErrorEquals: ['States.ALL'], ResultPath: '$.recordFailureError', Next: fixed.hasCause }],
        Next: fixed.hasCause,
      },
      // A caught error normally has a Cause; CausePath on a missing field would itself fail the execution.
      [fixed.hasCause]: {
        Type: 'Choice',
        Choices: [{ Variable: '$.error.Cause', IsPresent: true, Next: fixed.failed }],
        Default: fixed.failedWithoutCause,
      },
      [fixed.failed]: { Type: 'Fail', Error: RUN_FAILED_ERROR, CausePath: '$.error.Cause' },
      [fixed.failedWithoutCause]: {
        Type: 'Fail',
        Error: RUN_FAILED_ERROR,
        Cause: "The run failed without a cause; see the run's step records.",
      },
    } satisfies Record<string, State>);
    return {
      Comment:
        this.settings.comment ??
        `Stackline pipeline "${this.pipeline}" (${this.graph.nodes.length} steps). Input: {"pipeline": "${this.pipeline}", "parameters": {...}, "tags"?: ["k:v"], "runId"?: "..."}.`,
      StartAt: fixed.hasTags,
      States: states,
    };
  }

  private claimStepStates(node: StepNode): StepStates {
    const id = node.id;
    const ecs = node.spec.options.runner === 'ecs';
    if (!node.map) {
      const request = ecs ? this.names.claim(`Request_${id}`) : undefined;
      const step = this.names.claim(`Step_${id}`);
      return { entry: request ?? step, step, ...(request ? { request } : {}) };
    }
    const plan = this.names.claim(`PlanMap_${id}`);
    const choose = this.settings.inlineMaps ? this.names.claim(`ChooseMap_${id}`) : undefined;
    const processor = (prefix: string) => {
      const request = ecs ? this.names.claim(`${prefix}Request_${id}`) : undefined;
      return { step: this.names.claim(`${prefix}Step_${id}`), ...(request ? { request } : {}) };
    };
    const inline = this.settings.inlineMaps ? { map: this.names.claim(`Map_${id}`), ...processor('') } : undefined;
    const distributed = {
      map: this.names.claim(`DistributedMap_${id}`),
      ...processor(inline ? 'Distributed' : ''),
    };
    const collect = this.names.claim(`CollectMap_${id}`);
    return {
      entry: plan,
      step: (inline ?? distributed).step,
      map: {
        key: this.mapKey(id),
        plan,
        ...(choose ? { choose } : {}),
        ...(inline ? { inline } : {}),
        distributed,
        collect,
      },
    };
  }

  private readonly mapKeys = new Set<string>();

  /** A JSONPath-safe field name for `$.maps.<key>`. */
  private mapKey(id: string): string {
    const base = id.replace(/[^A-Za-z0-9_]/g, '_').replace(/^(?=[0-9])/, '_');
    let key = base;
    for (let n = 2; this.mapKeys.has(key); n++) key = `${base}_${n}`;
    this.mapKeys.add(key);
    return key;
  }

  private claimParallelNames(plan: ExecutionPlan): void {
    if (plan.kind === 'step') return;
    const children = plan.kind === 'sequence' ? plan.items : plan.branches;
    if (plan.kind === 'parallel') {
      const heads = plan.branches.map((b) => this.firstNode(b).id);
      this.parallelNames.set(plan, this.names.claim(`Parallel_${heads.join('_')}`));
    }
    for (const child of children) this.claimParallelNames(child);
  }

  private firstNode(plan: ExecutionPlan): StepNode {
    if (plan.kind === 'step') return plan.node;
    return this.firstNode(plan.kind === 'sequence' ? plan.items[0]! : plan.branches[0]!);
  }

  private entry(plan: ExecutionPlan): string {
    if (plan.kind === 'step') return this.stepStates.get(plan.node.id)!.entry;
    if (plan.kind === 'sequence') return this.entry(plan.items[0]!);
    return this.parallelNames.get(plan)!;
  }

  private fragment(plan: ExecutionPlan): StateMachineFragment {
    const states: Record<string, State> = {};
    this.renderPlan(plan, states, undefined, undefined);
    return { StartAt: this.entry(plan), States: states };
  }

  /**
   * Renders `plan` into `states`, continuing at `next` (or ending the scope). `catchers` is set at
   * the top level only: a Catch cannot leave a Parallel branch or a Map iteration, so errors there
   * propagate to the enclosing top-level state, whose Catch records the failure.
   */
  private renderPlan(
    plan: ExecutionPlan,
    states: Record<string, State>,
    next: string | undefined,
    catchers: Catcher[] | undefined,
  ): void {
    switch (plan.kind) {
      case 'step':
        this.renderStep(plan.node, states, next, catchers);
        return;
      case 'sequence':
        plan.items.forEach((item, i) => {
          const following = plan.items[i + 1];
          this.renderPlan(item, states, following ? this.entry(following) : next, catchers);
        });
        return;
      case 'parallel':
        states[this.parallelNames.get(plan)!] = {
          Type: 'Parallel',
          Branches: plan.branches.map((b) => this.fragment(b)),
          // Branch outputs are copies of the input: dropping them keeps the state constant-size.
          ResultPath: null,
          ...(catchers ? { Catch: catchers } : {}),
          ...transition(next),
        };
        return;
    }
  }

  private renderStep(
    node: StepNode,
    states: Record<string, State>,
    next: string | undefined,
    catchers: Catcher[] | undefined,
  ): void {
    const names = this.stepStates.get(node.id)!;
    const caught = catchers ? { Catch: catchers } : {};
    if (!names.map) {
      const stepNames = { step: names.step, request: names.request };
      this.renderRunStep(node, states, stepNames, '$.run.runId', undefined, next, catchers);
      return;
    }
    const { key, plan, choose, inline, distributed, collect } = names.map;
    const mapPath = `$.maps.${key}`;
    const afterPlan = choose ?? distributed.map;
    states[plan] = {
      Type: 'Task',
      Resource: LAMBDA_INVOKE,
      Parameters: this.invoke(this.request('plan-map', { stepId: node.id, 'runId.$': '$.run.runId' })),
      // Replaces `$.maps`: a plan is only needed until its Map ends, so plans never pile up.
      ResultSelector: { [`${key}.$`]: '$.Payload' },
      ResultPath: '$.maps',
      Retry: [LAMBDA_SERVICE_RETRIER, TRANSIENT_RETRIER],
      ...caught,
      Next: afterPlan,
    };
    if (choose && inline) {
      states[choose] = {
        Type: 'Choice',
        Comment: 'The runner plans small fan-outs inline (items) and wide ones as an S3 item list.',
        Choices: [{ Variable: `${mapPath}.items`, IsPresent: true, Next: inline.map }],
        Default: distributed.map,
      };
      const items = { ItemsPath: `${mapPath}.items` };
      states[inline.map] = this.mapState(node, inline, items, 'INLINE', collect, catchers);
    }
    states[distributed.map] = this.mapState(
      node,
      distributed,
      {
        ItemReader: {
          Resource: S3_GET_OBJECT,
          ReaderConfig: { InputType: 'JSON' },
          Parameters: { 'Bucket.$': `${mapPath}.itemsBucket`, 'Key.$': `${mapPath}.itemsKey` },
        },
      },
      'DISTRIBUTED',
      collect,
      catchers,
    );
    states[collect] = {
      Type: 'Task',
      Resource: LAMBDA_INVOKE,
      Parameters: this.invoke(this.request('collect-map', { stepId: node.id, 'runId.$': '$.run.runId' })),
      ResultPath: null,
      Retry: [LAMBDA_SERVICE_RETRIER, TRANSIENT_RETRIER],
      ...caught,
      ...transition(next),
    };
  }

  private mapState(
    node: StepNode,
    names: { step: string; request?: string },
    items: Pick<MapState, 'ItemsPath' | 'ItemReader'>,
    mode: 'INLINE' | 'DISTRIBUTED',
    next: string,
    catchers: Catcher[] | undefined,
  ): MapState {
    const processorStates: Record<string, State> = {};
    this.renderRunStep(node, processorStates, names, '$.runId', '$.mapIndex', undefined, undefined);
    return {
      Type: 'Map',
      ...items,
      ItemSelector: { 'runId.$': '$.run.runId', 'mapIndex.$': '$$.Map.Item.Value' },
      ItemProcessor: {
        ProcessorConfig: mode === 'INLINE' ? { Mode: 'INLINE' } : { Mode: 'DISTRIBUTED', ExecutionType: 'STANDARD' },
        StartAt: names.request ?? names.step,
        States: processorStates,
      },
      MaxConcurrency: node.map?.maxConcurrency ?? this.settings.defaultMapConcurrency,
      ResultPath: null,
      ...(catchers ? { Catch: catchers } : {}),
      Next: next,
    };
  }

  /** The `run-step` call: a Lambda task, or a Pass building the request plus an ECS task. */
  private renderRunStep(
    node: StepNode,
    states: Record<string, State>,
    names: { step: string; request?: string | undefined },
    runIdPath: string,
    mapIndexPath: string | undefined,
    next: string | undefined,
    catchers: Catcher[] | undefined,
  ): void {
    const request = this.request('run-step', {
      stepId: node.id,
      'runId.$': runIdPath,
      ...(mapIndexPath ? { 'mapIndex.$': mapIndexPath } : {}),
    });
    const { timeoutMs } = node.spec.options;
    const common: { ResultPath: null; OutputPath?: null; TimeoutSeconds?: number } = {
      ResultPath: null,
      // Inside a Map, each iteration's output is collected into an array: keep every element `{}`.
      ...(mapIndexPath ? { OutputPath: null } : {}),
    };
    if (node.spec.options.runner !== 'ecs') {
      states[names.step] = {
        Type: 'Task',
        Resource: LAMBDA_INVOKE,
        Parameters: this.invoke(request),
        ...common,
        // The runner enforces timeoutMs itself and answers (StepTimeoutError, then exits) before
        // the function's timeout. A shorter Task timeout would abandon an invocation that is still
        // running and start its retry beside it, so the Task waits as long as the function may run.
        ...(timeoutMs === undefined ? {} : { TimeoutSeconds: this.settings.lambdaTimeoutSeconds }),
        Retry: this.retriers(node, true),
        ...(catchers ? { Catch: catchers } : {}),
        ...transition(next),
      };
      return;
    }
    const pass: PassState = { Type: 'Pass', Parameters: request, ResultPath: '$.request', Next: names.step };
    states[names.request!] = pass;
    const ecsTimeoutSeconds = timeoutMs === undefined ? undefined : Math.max(1, Math.ceil(timeoutMs / 1000));
    const heartbeat = ecsHeartbeatSeconds(ecsTimeoutSeconds);
    states[names.step] = {
      Type: 'Task',
      Resource: ECS_RUN_TASK,
      Parameters: ecsRunTaskParameters(this.settings.ecs!, node.spec.options.resources),
      ...common,
      ...(ecsTimeoutSeconds === undefined ? {} : { TimeoutSeconds: ecsTimeoutSeconds }),
      ...(heartbeat === undefined ? {} : { HeartbeatSeconds: heartbeat }),
      Retry: this.retriers(node, false),
      ...(catchers ? { Catch: catchers } : {}),
      ...transition(next),
    };
  }

  private retriers(node: StepNode, lambda: boolean): Retrier[] {
    const policy = retryPolicy(node.spec.options.retries);
    const retriers: Retrier[] = [];
    // The runner's error type is the error name: the Lambda runtime reports it, an ECS task
    // sends it with SendTaskFailure. Only Lambda has service errors of its own to retry.
    if (policy.maxRetries > 0) retriers.push({ ErrorEquals: ['NonRetriableError'], MaxAttempts: 0 });
    if (lambda) retriers.push(LAMBDA_SERVICE_RETRIER);
    retriers.push(TRANSIENT_RETRIER);
    if (policy.maxRetries > 0) {
      retriers.push({
        ErrorEquals: ['States.TaskFailed', 'States.Timeout'],
        IntervalSeconds: Math.max(1, Math.ceil(policy.backoffMs / 1000)),
        MaxAttempts: policy.maxRetries,
        BackoffRate: policy.backoffRate,
        MaxDelaySeconds: Math.max(1, Math.ceil(policy.maxBackoffMs / 1000)),
      });
    }
    return retriers;
  }

  /** A step runner request: `action` and `pipeline` first, then the given fields in their order. */
  private request(action: Action, fields: PayloadTemplate): PayloadTemplate {
    return { action, pipeline: this.pipeline, ...fields };
  }

  private invoke(payload: PayloadTemplate): PayloadTemplate {
    return { FunctionName: this.settings.lambdaFunctionArn, Payload: payload };
  }
}

// --- whole-definition checks ----------------------------------------------------------------

function listStateNames(fragment: StateMachineFragment, out: string[] = []): string[] {
  for (const [name, state] of Object.entries(fragment.States)) {
    out.push(name);
    if (state.Type === 'Parallel') for (const branch of state.Branches) listStateNames(branch, out);
    if (state.Type === 'Map') listStateNames(state.ItemProcessor, out);
  }
  return out;
}

// Step Functions rejects whitespace, brackets, wildcards, these punctuation marks and control characters.
const INVALID_NAME_CHARACTER = /[\s<>{}[\]?*"#%\\^|~`$&,;:/]/;
const isControlCharacter = (c: string) =>
  c.charCodeAt(0) < 0x20 || (c.charCodeAt(0) >= 0x7f && c.charCodeAt(0) <= 0x9f);

function checkStateName(name: string): string[] {
  if (name.length > STEP_FUNCTIONS_LIMITS.stateNameLength)
    return [
      `state name "${name}" is ${name.length} characters long; Step Functions accepts at most ${STEP_FUNCTIONS_LIMITS.stateNameLength}. Use a shorter step id.`,
    ];
  if (INVALID_NAME_CHARACTER.test(name) || [...name].some(isControlCharacter))
    return [
      `state name "${name}" contains a character Step Functions does not accept. Use letters, digits, "_" or "-".`,
    ];
  return [];
}
