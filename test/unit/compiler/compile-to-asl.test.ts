import '../../support/promise-with-resolvers.ts';
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { StateMachine } from 'aws-local-stepfunctions';
import { describe, expect, it } from 'vitest';
import { z } from 'zod';
import type {
  State,
  StateMachineDefinition,
  StateMachineFragment,
  TaskState,
} from '../../../lib/compiler/asl-types.ts';
import {
  type CompiledStateMachine,
  type CompileOptions,
  compileGraphToAsl,
  compileToAsl,
  type EcsRunnerOptions,
  type ExecutionPlan,
  planGraph,
  TRANSIENT_RETRIER,
} from '../../../lib/compiler/compile-to-asl.ts';
import { ECS_HEARTBEAT_SECONDS } from '../../../lib/compiler/ecs-task.ts';
import type { PipelineGraph, StepNode } from '../../../lib/dsl/builder.ts';
import type { StepSpec } from '../../../lib/dsl/step.ts';
import type { StepOptions } from '../../../lib/dsl/types.ts';
import { PipelineDefinitionError, pipeline, step, ValidationError } from '../../../lib/index.ts';
import { StepRunnerRequest } from '../../../lib/runtime/step-runner-protocol.ts';

// --- tools: asl-validator, golden files ------------------------------------------------------

type AslValidator = (definition: unknown) => { isValid: boolean; errorsText(separator?: string): string };
const aslValidator = createRequire(import.meta.url)('asl-validator') as AslValidator;

const GOLDEN_DIR = join(dirname(fileURLToPath(import.meta.url)), '../../golden/asl');

/** Compares with `test/golden/asl/<name>.json`; `UPDATE_GOLDEN=1` rewrites the file instead. */
function expectGolden(name: string, compactJson: string): void {
  // Golden files are indented so that diffs are readable; the deployed definition is compact.
  const json = JSON.stringify(JSON.parse(compactJson), null, 2);
  const file = join(GOLDEN_DIR, `${name}.json`);
  if (process.env.UPDATE_GOLDEN === '1') {
    mkdirSync(GOLDEN_DIR, { recursive: true });
    writeFileSync(file, `${json}\n`);
    return;
  }
  if (!existsSync(file)) throw new Error(`Missing golden file ${file}: run the tests with UPDATE_GOLDEN=1.`);
  expect(json, `${name}: compiled ASL differs from ${file} (UPDATE_GOLDEN=1 rewrites it)`).toBe(
    readFileSync(file, 'utf8').replace(/\n$/, ''),
  );
}

// --- tools: structure and ordering checks ----------------------------------------------------

function targetsOf(state: State): string[] {
  const targets: string[] = [];
  if ('Next' in state && state.Next !== undefined) targets.push(state.Next);
  if (state.Type === 'Choice') {
    targets.push(...state.Choices.map((c) => c.Next));
    if (state.Default) targets.push(state.Default);
  }
  if ('Catch' in state && state.Catch) targets.push(...state.Catch.map((c) => c.Next));
  return targets;
}

/**
 * Transition problems asl-validator may miss: StartAt, Next, Default, Choices and Catch targets
 * that do not exist in their scope, states that neither continue nor end, unreachable states.
 */
function transitionProblems(fragment: StateMachineFragment, scope = 'top level'): string[] {
  const problems: string[] = [];
  const names = new Set(Object.keys(fragment.States));
  if (!names.has(fragment.StartAt)) problems.push(`${scope}: StartAt "${fragment.StartAt}" does not exist`);
  for (const [name, state] of Object.entries(fragment.States)) {
    for (const target of targetsOf(state))
      if (!names.has(target)) problems.push(`${scope}: "${name}" goes to missing state "${target}"`);
    if (['Task', 'Pass', 'Parallel', 'Map'].includes(state.Type)) {
      const s = state as { Next?: string; End?: boolean };
      if ((s.Next === undefined) === (s.End !== true))
        problems.push(`${scope}: "${name}" needs exactly one of Next/End`);
    }
    if (state.Type === 'Parallel')
      for (const [i, branch] of state.Branches.entries())
        problems.push(...transitionProblems(branch, `${name} branch ${i}`));
    if (state.Type === 'Map') problems.push(...transitionProblems(state.ItemProcessor, `${name} processor`));
  }
  const reached = new Set<string>();
  const stack = [fragment.StartAt];
  while (stack.length > 0) {
    const name = stack.pop()!;
    if (reached.has(name) || !names.has(name)) continue;
    reached.add(name);
    stack.push(...targetsOf(fragment.States[name]!));
  }
  for (const name of names) if (!reached.has(name)) problems.push(`${scope}: "${name}" is unreachable`);
  return problems;
}

type Facts = { must: Set<string>; may: Set<string> };

/**
 * Walks the definition's normal transitions (Catch paths lead to the failure states only) and
 * computes, at every runner call, which calls are guaranteed to have finished before it (`must`:
 * intersection over the paths that reach it) and which may have (`may`: union). Then checks the
 * protocol order: start-run first; a step (or a fan-out's plan-map) only after every upstream step
 * completed; a fan-out's items after its plan, its collect after its items; finish-run after
 * everything; nothing twice on one path.
 */
function orderingReport(definition: StateMachineDefinition, graph: PipelineGraph) {
  const problems: string[] = [];
  const before = new Map<string, Set<string>>();
  const done = (id: string) => (graph.byId.get(id)!.map ? `collect:${id}` : `run:${id}`);
  const require = (event: string, facts: Facts, needed: string[]) => {
    for (const n of needed) if (!facts.must.has(n)) problems.push(`${event} can start before ${n}`);
    if (facts.may.has(event)) problems.push(`${event} can run twice`);
  };
  const check = (event: string, facts: Facts) => {
    const [kind, id] = event.split(':') as [string, string];
    const node = graph.byId.get(id);
    if (kind === 'start') return facts.may.has('start') && problems.push('start-run can run twice');
    if (kind === 'finish') return require(event, facts, ['start', ...graph.nodes.map((n) => done(n.id))]);
    if (!node) return problems.push(`${event}: unknown step`);
    const upstream = ['start', ...node.upstream.map(done)];
    if (kind === 'plan' || (kind === 'run' && !node.map)) {
      before.set(id, new Set(facts.must));
      return require(event, facts, upstream);
    }
    if (kind === 'run') return require(event, { must: facts.must, may: new Set() }, [`plan:${id}`]);
    return require(event, facts, [`run:${id}`]);
  };
  const eventOf = (name: string, state: TaskState, fragment: StateMachineFragment): string | undefined => {
    const params = state.Parameters as { Payload?: Record<string, unknown> } | undefined;
    if (state.Resource === 'arn:aws:states:::lambda:invoke') {
      const payload = params!.Payload!;
      const kind = { 'start-run': 'start', 'run-step': 'run', 'plan-map': 'plan', 'collect-map': 'collect' }[
        payload.action as string
      ];
      if (payload.action === 'finish-run') return payload.status === 'completed' ? 'finish' : undefined;
      return kind === 'start' ? 'start' : `${kind}:${payload.stepId}`;
    }
    const pass = Object.values(fragment.States).find((s) => s.Type === 'Pass' && s.Next === name);
    return `run:${(pass as unknown as { Parameters: { stepId: string } }).Parameters.stepId}`;
  };
  const flow = (fragment: StateMachineFragment, entry: Facts): Facts | undefined => {
    const normalTargets = (s: State) =>
      targetsOf(s).filter((t) => !('Catch' in s && s.Catch?.some((c) => c.Next === t && s.Next !== t)));
    const preds = new Map<string, string[]>();
    const reached = new Set<string>();
    const stack = [fragment.StartAt];
    while (stack.length > 0) {
      const name = stack.pop()!;
      if (reached.has(name)) continue;
      reached.add(name);
      for (const t of normalTargets(fragment.States[name]!)) {
        preds.set(t, [...(preds.get(t) ?? []), name]);
        stack.push(t);
      }
    }
    const out = new Map<string, Facts>();
    const pending = [...reached];
    let result: Facts | undefined;
    while (pending.length > 0) {
      const index = pending.findIndex((n) => (preds.get(n) ?? []).every((p) => out.has(p)));
      if (index < 0) throw new Error('cycle in the state machine');
      const name = pending.splice(index, 1)[0]!;
      const state = fragment.States[name]!;
      const incoming = (preds.get(name) ?? []).map((p) => out.get(p)!);
      if (name === fragment.StartAt) incoming.push(entry);
      const facts: Facts = {
        must: new Set([...incoming[0]!.must].filter((e) => incoming.every((f) => f.must.has(e)))),
        may: new Set(incoming.flatMap((f) => [...f.may])),
      };
      let after: Facts = facts;
      if (state.Type === 'Task') {
        const event = eventOf(name, state, fragment);
        if (event) {
          check(event, facts);
          after = { must: new Set([...facts.must, event]), may: new Set([...facts.may, event]) };
        }
      } else if (state.Type === 'Parallel') {
        const ends = state.Branches.map((b) => flow(b, facts)!);
        after = { must: new Set(ends.flatMap((e) => [...e.must])), may: new Set(ends.flatMap((e) => [...e.may])) };
      } else if (state.Type === 'Map') {
        after = flow(state.ItemProcessor, facts)!;
      }
      out.set(name, after);
      const ends = state.Type === 'Succeed' || ('End' in state && state.End === true);
      if (ends)
        result = result
          ? {
              must: new Set([...result.must].filter((e) => after.must.has(e))),
              may: new Set([...result.may, ...after.may]),
            }
          : after;
    }
    return result;
  };
  const end = flow(definition, { must: new Set(), may: new Set() });
  if (!end?.must.has('finish')) problems.push('a successful execution does not always call finish-run');
  const stepsBefore = new Map(
    [...before].map(([id, events]) => [
      id,
      new Set([...events].filter((e) => e.startsWith('run:') || e.startsWith('collect:')).map((e) => e.split(':')[1]!)),
    ]),
  );
  return { problems, stepsBefore };
}

function ancestorsOf(graph: PipelineGraph): Map<string, Set<string>> {
  const ancestors = new Map<string, Set<string>>();
  for (const node of graph.nodes)
    ancestors.set(node.id, new Set(node.upstream.flatMap((u) => [u, ...ancestors.get(u)!])));
  return ancestors;
}

function allStates(fragment: StateMachineFragment): Array<[string, State]> {
  return Object.entries(fragment.States).flatMap(
    ([name, state]): Array<[string, State]> => [
      [name, state],
      ...(state.Type === 'Parallel' ? state.Branches.flatMap(allStates) : []),
      ...(state.Type === 'Map' ? allStates(state.ItemProcessor) : []),
    ],
  );
}

/** asl-validator, the transition checks and the ordering checks; returns the compiled machine. */
function expectValid(compiled: CompiledStateMachine, graph: PipelineGraph): CompiledStateMachine {
  const validation = aslValidator(JSON.parse(compiled.json));
  expect(validation.isValid, validation.errorsText('\n')).toBe(true);
  expect(transitionProblems(compiled.definition)).toEqual([]);
  expect(orderingReport(compiled.definition, graph).problems).toEqual([]);
  expect(compiled.stateCount).toBe(allStates(compiled.definition).length);
  expect(compiled.sizeBytes).toBe(Buffer.byteLength(compiled.json));
  return compiled;
}

// --- pipelines -------------------------------------------------------------------------------

const LAMBDA_ARN = 'arn:aws:lambda:eu-west-1:123456789012:function:stackline-step-runner';
const ECS: EcsRunnerOptions = {
  clusterArn: 'arn:aws:ecs:eu-west-1:123456789012:cluster/stackline',
  taskDefinitionArn: 'arn:aws:ecs:eu-west-1:123456789012:task-definition/stackline-step-runner:3',
  containerName: 'step-runner',
  subnets: ['subnet-0a1b2c3d4e5f60718', 'subnet-1b2c3d4e5f6071829'],
  securityGroups: ['sg-0123456789abcdef0'],
};
const OPTIONS: CompileOptions = { lambdaFunctionArn: LAMBDA_ARN, ecs: ECS };

const Num = z.number();
const source = step({ name: 'source', outputs: { value: Num } }, () => ({ value: 1 }));
const transform = step({ name: 'transform', inputs: { x: Num }, outputs: { value: Num } }, ({ inputs }) => ({
  value: inputs.x + 1,
}));
const combine = step({ name: 'combine', inputs: { a: Num, b: Num }, outputs: { value: Num } }, ({ inputs }) => ({
  value: inputs.a + inputs.b,
}));
const shard = step({ name: 'shard', outputs: { shards: z.array(Num) } }, () => ({ shards: [1, 2, 3] }));
const score = step({ name: 'score', inputs: { shard: Num }, outputs: { score: Num } }, ({ inputs }) => ({
  score: inputs.shard * 2,
}));
const summarize = step(
  { name: 'summarize', inputs: { scores: z.array(Num) }, outputs: { total: Num } },
  ({ inputs }) => ({
    total: inputs.scores.reduce((a, b) => a + b, 0),
  }),
);
const train = step(
  {
    name: 'train',
    inputs: { x: Num },
    outputs: { model: Num },
    runner: 'ecs',
    resources: { cpu: 2, memoryMb: 8192, ephemeralStorageMb: 50_000 },
    timeoutMs: 2 * 3_600_000,
  },
  ({ inputs }) => ({ model: inputs.x }),
);
const flaky = step(
  {
    name: 'flaky',
    inputs: { x: Num },
    outputs: { value: Num },
    retries: { maxRetries: 4, backoffMs: 1500, backoffRate: 1.5, maxBackoffMs: 20_000 },
    timeoutMs: 2500,
  },
  ({ inputs }) => ({ value: inputs.x }),
);

const linear = pipeline({ name: 'linear' }, () => {
  const { value } = source({}, { id: 'a' });
  const { value: b } = transform({ x: value }, { id: 'b' });
  transform({ x: b }, { id: 'c' });
});
const diamond = pipeline({ name: 'diamond' }, () => {
  const { value } = source({}, { id: 'a' });
  const { value: b } = transform({ x: value }, { id: 'b' });
  const { value: c } = transform({ x: value }, { id: 'c' });
  combine({ a: b, b: c }, { id: 'd' });
});
const fanOut = pipeline({ name: 'fan-out' }, () => {
  const { shards } = shard({}, { id: 'a' });
  const { score: scores } = score.map({ shard: shards }, { id: 'b', over: 'shard', maxConcurrency: 5 });
  summarize({ scores }, { id: 'c' });
});
const mixed = pipeline({ name: 'mixed-runners' }, () => {
  const { value } = source({}, { id: 'prepare' });
  const { model } = train({ x: value });
  transform({ x: model }, { id: 'evaluate' });
});
const retrying = pipeline({ name: 'retries-timeouts' }, () => {
  const { value } = source({}, { id: 'fetch' });
  const { value: v } = flaky({ x: value });
  step({ name: 'publish', inputs: { x: Num }, outputs: { ok: z.boolean() }, retries: 2, timeoutMs: 600_000 }, () => ({
    ok: true,
  }))({ x: v });
});
const wide = pipeline({ name: 'wide-parallel' }, () => {
  const roots = ['r1', 'r2', 'r3', 'r4', 'r5'];
  for (const id of roots) source({}, { id });
  source({}, { id: 'report', after: roots });
});
/** a→c, a→d, b→d: not series-parallel. */
const nShape = pipeline({ name: 'n-shape' }, () => {
  const { value: a } = source({}, { id: 'a' });
  const { value: b } = source({}, { id: 'b' });
  transform({ x: a }, { id: 'c' });
  combine({ a, b }, { id: 'd' });
});

function linearOf(steps: number) {
  return pipeline({ name: `linear-${steps}` }, () => {
    let { value } = source({}, { id: 's0' });
    for (let i = 1; i < steps; i++) ({ value } = transform({ x: value }, { id: `s${i}` }));
  });
}

const build = (p: { build(params: unknown): PipelineGraph; parseParameters(raw: unknown): unknown }) =>
  p.build(p.parseParameters({}));

/** A graph built by hand: `edges` maps each id (in topological order) to its upstream ids. */
function graphOf(edges: Record<string, string[]>, options: Record<string, StepOptions> = {}): PipelineGraph {
  const nodes: StepNode[] = Object.entries(edges).map(([id, upstream]) => ({
    id,
    spec: { ...source.spec, options: options[id] ?? {} } as StepSpec,
    params: {},
    inputs: {},
    upstream,
  }));
  const downstream = new Map<string, string[]>(nodes.map((n) => [n.id, []]));
  for (const n of nodes) for (const u of n.upstream) downstream.get(u)!.push(n.id);
  return { pipeline: 'hand-built', externals: [], nodes, byId: new Map(nodes.map((n) => [n.id, n])), downstream };
}

/** The plan as a compact string: `a > ([b > c] | d) > e` (a sequence inside a branch in brackets). */
function shape(plan: ExecutionPlan, nested = false): string {
  if (plan.kind === 'step') return plan.node.id;
  if (plan.kind === 'parallel') return `(${plan.branches.map((b) => shape(b, true)).join(' | ')})`;
  const chain = plan.items.map((p) => shape(p, true)).join(' > ');
  return nested ? `[${chain}]` : chain;
}

// --- tests -----------------------------------------------------------------------------------

const GOLDEN = [
  ['linear', linear],
  ['diamond', diamond],
  ['fan-out', fanOut],
  ['mixed-runners', mixed],
  ['retries-timeouts', retrying],
  ['wide-parallel', wide],
  ['n-shape', nShape],
] as const;

describe('compileToAsl', () => {
  it.each(GOLDEN)('compiles the %s pipeline to its golden ASL, which validates and respects every edge', (name, p) => {
    const compiled = expectValid(compileToAsl(p, OPTIONS), build(p));
    expectGolden(name, compiled.json);
  });

  it('is deterministic: compiling twice gives byte-identical JSON', () => {
    for (const [, p] of GOLDEN) expect(compileToAsl(p, OPTIONS).json).toBe(compileToAsl(p, OPTIONS).json);
  });

  it('keeps a chain a chain: one Task per step, no Parallel', () => {
    const { definition } = compileToAsl(linear, OPTIONS);
    expect(allStates(definition).map(([name]) => name)).toEqual([
      'HasTags',
      'DefaultTags',
      'HasRunId',
      'StartRun',
      'StartRunWithRunId',
      'DuplicateTrigger',
      'Step_a',
      'Step_b',
      'Step_c',
      'FinishRun',
      'Succeeded',
      'RecordFailure',
      'HasFailureCause',
      'Failed',
      'FailedWithoutCause',
    ]);
    expect(definition.States.StartRun).toMatchObject({ Next: 'Step_a' });
    expect(definition.States.Step_c).toMatchObject({ Next: 'FinishRun' });
  });

  it('turns a diamond into a Parallel of the two middle steps that joins at the last step', () => {
    const { definition } = compileToAsl(diamond, OPTIONS);
    expect(definition.States.Step_a).toMatchObject({ Next: 'Parallel_b_c' });
    expect(definition.States.Parallel_b_c).toMatchObject({
      Type: 'Parallel',
      Branches: [
        { StartAt: 'Step_b', States: { Step_b: { End: true } } },
        { StartAt: 'Step_c', States: { Step_c: { End: true } } },
      ],
      ResultPath: null,
      Next: 'Step_d',
    });
  });

  it('runs independent roots as one Parallel joined by their common successor', () => {
    expect(shape(planGraph(build(wide)))).toBe('(r1 | r2 | r3 | r4 | r5) > report');
  });

  it('starts with a Choice on runId and passes it to start-run only when the input has one', () => {
    const { definition } = compileToAsl(linear, OPTIONS);
    expect(definition.StartAt).toBe('HasTags');
    expect(definition.States.HasTags).toEqual({
      Type: 'Choice',
      Choices: [{ Variable: '$.tags', IsPresent: true, Next: 'HasRunId' }],
      Default: 'DefaultTags',
    });
    expect(definition.States.DefaultTags).toEqual({ Type: 'Pass', Result: [], ResultPath: '$.tags', Next: 'HasRunId' });
    expect(definition.States.HasRunId).toEqual({
      Type: 'Choice',
      Choices: [{ Variable: '$.runId', IsPresent: true, Next: 'StartRunWithRunId' }],
      Default: 'StartRun',
    });
    const payload = (name: string) =>
      ((definition.States[name] as TaskState).Parameters as { Payload: object }).Payload;
    expect(payload('StartRun')).not.toHaveProperty('runId.$');
    expect(payload('StartRunWithRunId')).toMatchObject({ 'runId.$': '$.runId', 'tags.$': '$.tags' });
    expect(payload('StartRun')).toMatchObject({ 'tags.$': '$.tags' });
    expect(definition.States.StartRun).toMatchObject({
      ResultSelector: { 'runId.$': '$.Payload.runId' },
      ResultPath: '$.run',
    });
  });

  it('discards every task, Parallel and Map result so the state stays constant-size', () => {
    for (const p of [diamond, fanOut, mixed, wide, nShape]) {
      for (const [name, state] of allStates(compileToAsl(p, OPTIONS).definition)) {
        if (state.Type === 'Parallel' || state.Type === 'Map' || (state.Type === 'Task' && name !== 'StartRun'))
          expect([name, 'ResultPath' in state && state.ResultPath]).toEqual([
            name,
            name.startsWith('StartRun') ? '$.run' : name.startsWith('PlanMap_') ? '$.maps' : null,
          ]);
      }
    }
  });

  it('catches every failure at the top level and records it before failing with the cause', () => {
    const { definition } = compileToAsl(diamond, OPTIONS);
    const catchAll = [{ ErrorEquals: ['States.ALL'], ResultPath: '$.error', Next: 'RecordFailure' }];
    for (const name of ['Step_a', 'Parallel_b_c', 'Step_d', 'FinishRun'])
      expect(definition.States[name]).toMatchObject({ Catch: catchAll });
    expect(definition.States.RecordFailure).toMatchObject({
      Parameters: {
        Payload: { action: 'finish-run', status: 'failed', 'error.$': '$.error', 'runId.$': '$.run.runId' },
      },
      Next: 'HasFailureCause',
    });
    expect(definition.States.Failed).toEqual({ Type: 'Fail', Error: 'StepFailed', CausePath: '$.error.Cause' });
  });

  it('fans out with plan-map, a Choice between an inline and a Distributed Map, then collect-map', () => {
    const { definition } = compileToAsl(fanOut, OPTIONS);
    expect(definition.States.PlanMap_b).toMatchObject({
      Parameters: { Payload: { action: 'plan-map', stepId: 'b', 'runId.$': '$.run.runId' } },
      ResultSelector: { 'b.$': '$.Payload' },
      ResultPath: '$.maps',
      Next: 'ChooseMap_b',
    });
    expect(definition.States.ChooseMap_b).toMatchObject({
      Choices: [{ Variable: '$.maps.b.items', IsPresent: true, Next: 'Map_b' }],
      Default: 'DistributedMap_b',
    });
    expect(definition.States.Map_b).toMatchObject({
      ItemsPath: '$.maps.b.items',
      ItemSelector: { 'runId.$': '$.run.runId', 'mapIndex.$': '$$.Map.Item.Value' },
      ItemProcessor: {
        ProcessorConfig: { Mode: 'INLINE' },
        StartAt: 'Step_b',
        States: {
          Step_b: {
            Parameters: {
              Payload: { action: 'run-step', stepId: 'b', 'runId.$': '$.runId', 'mapIndex.$': '$.mapIndex' },
            },
            End: true,
          },
        },
      },
      MaxConcurrency: 5,
      ResultPath: null,
      Next: 'CollectMap_b',
    });
    expect(definition.States.DistributedMap_b).toMatchObject({
      ItemReader: {
        Resource: 'arn:aws:states:::s3:getObject',
        ReaderConfig: { InputType: 'JSON' },
        Parameters: { 'Bucket.$': '$.maps.b.itemsBucket', 'Key.$': '$.maps.b.itemsKey' },
      },
      ItemProcessor: {
        ProcessorConfig: { Mode: 'DISTRIBUTED', ExecutionType: 'STANDARD' },
        StartAt: 'DistributedStep_b',
      },
      Next: 'CollectMap_b',
    });
    expect(definition.States.CollectMap_b).toMatchObject({
      Parameters: { Payload: { action: 'collect-map', stepId: 'b' } },
      ResultPath: null,
      Next: 'Step_c',
    });
  });

  it('compiles only the Distributed Map path when distributedMapThreshold is 0', () => {
    const compiled = expectValid(compileToAsl(fanOut, { ...OPTIONS, distributedMapThreshold: 0 }), build(fanOut));
    const names = allStates(compiled.definition).map(([name]) => name);
    expect(names).not.toContain('ChooseMap_b');
    expect(names).not.toContain('Map_b');
    expect(compiled.definition.States.PlanMap_b).toMatchObject({ Next: 'DistributedMap_b' });
  });

  it('uses defaultMapConcurrency, then 10, for fan-outs that set no maxConcurrency', () => {
    const graph = build(fanOut);
    delete graph.byId.get('b')!.map!.maxConcurrency;
    expect(compileGraphToAsl(graph, 'fan-out', OPTIONS).definition.States.Map_b).toMatchObject({ MaxConcurrency: 10 });
    const withDefault = compileGraphToAsl(graph, 'fan-out', { ...OPTIONS, defaultMapConcurrency: 3 });
    expect(withDefault.definition.States.Map_b).toMatchObject({ MaxConcurrency: 3 });
  });

  it('runs ECS steps on Fargate with the request and the task token as overrides, waiting for the token', () => {
    const { definition } = compileToAsl(mixed, OPTIONS);
    expect(definition.States.Step_prepare).toMatchObject({ Next: 'Request_train' });
    expect(definition.States.Request_train).toEqual({
      Type: 'Pass',
      Parameters: { action: 'run-step', pipeline: 'mixed-runners', stepId: 'train', 'runId.$': '$.run.runId' },
      ResultPath: '$.request',
      Next: 'Step_train',
    });
    const task = definition.States.Step_train as TaskState;
    expect(task.Resource).toBe('arn:aws:states:::ecs:runTask.waitForTaskToken');
    expect(task.Parameters).toEqual({
      LaunchType: 'FARGATE',
      Cluster: ECS.clusterArn,
      TaskDefinition: ECS.taskDefinitionArn,
      NetworkConfiguration: {
        AwsvpcConfiguration: { Subnets: ECS.subnets, SecurityGroups: ECS.securityGroups, AssignPublicIp: 'DISABLED' },
      },
      Overrides: {
        Cpu: '2048',
        Memory: '8192',
        EphemeralStorage: { SizeInGiB: 49 },
        ContainerOverrides: [
          {
            Name: 'step-runner',
            Cpu: 2048,
            Memory: 8192,
            Environment: [
              { Name: 'STACKLINE_REQUEST', 'Value.$': 'States.JsonToString($.request)' },
              { Name: 'STACKLINE_TASK_TOKEN', 'Value.$': '$$.Task.Token' },
            ],
          },
        ],
      },
    });
    expect(task.TimeoutSeconds).toBe(7200);
    // A task that dies without reporting sends no more heartbeats: the state fails after 5 minutes.
    expect(task.HeartbeatSeconds).toBe(ECS_HEARTBEAT_SECONDS);
    // No retries declared: only the runner's transient errors are retried, as on Lambda.
    expect(task.Retry).toEqual([TRANSIENT_RETRIER]);
  });

  it('gives ECS steps the Retry fields of Lambda steps, without Lambda service errors: NonRetriableError first, never retried', () => {
    const p = pipeline({ name: 'ecs-retries' }, () => {
      const { value } = source({}, { id: 'a' });
      const job = step(
        {
          name: 'job',
          inputs: { x: Num },
          outputs: { y: Num },
          runner: 'ecs',
          retries: { maxRetries: 3, backoffMs: 2000 },
        },
        ({ inputs }) => ({ y: inputs.x }),
      );
      job({ x: value });
      const lambdaJob = step(
        { name: 'lambda_job', inputs: { x: Num }, outputs: { y: Num }, retries: { maxRetries: 3, backoffMs: 2000 } },
        ({ inputs }) => ({ y: inputs.x }),
      );
      lambdaJob({ x: value });
    });
    const { definition } = expectValid(compileToAsl(p, OPTIONS), build(p));
    const parallel = definition.States.Parallel_job_lambda_job as { Branches: StateMachineFragment[] };
    const [ecsTask, lambdaTask] = parallel.Branches.map(
      (b) => b.States[`Step_${b.StartAt.replace(/^(Request|Step)_/, '')}`] as TaskState,
    );
    expect(ecsTask!.Retry).toEqual([
      { ErrorEquals: ['NonRetriableError'], MaxAttempts: 0 },
      TRANSIENT_RETRIER,
      {
        ErrorEquals: ['States.TaskFailed', 'States.Timeout'],
        IntervalSeconds: 2,
        MaxAttempts: 3,
        BackoffRate: 2,
        MaxDelaySeconds: 60,
      },
    ]);
    expect(lambdaTask!.Retry!.filter((r) => !r.ErrorEquals[0]!.startsWith('Lambda.'))).toEqual(ecsTask!.Retry);
  });

  it('sets HeartbeatSeconds only below TimeoutSeconds, as Step Functions requires', () => {
    const withTimeout = (timeoutMs: number) =>
      pipeline({ name: `ecs-timeout-${timeoutMs}` }, () => {
        step({ name: 'job', outputs: { y: Num }, runner: 'ecs', timeoutMs }, () => ({ y: 1 }))({});
      });
    const short = compileToAsl(withTimeout(120_000), OPTIONS).definition.States.Step_job as TaskState;
    expect(short).toMatchObject({ TimeoutSeconds: 120 });
    expect(short.HeartbeatSeconds).toBeUndefined();
    const long = compileToAsl(withTimeout(3_600_000), OPTIONS).definition.States.Step_job as TaskState;
    expect(long).toMatchObject({ TimeoutSeconds: 3600, HeartbeatSeconds: ECS_HEARTBEAT_SECONDS });
  });

  it('runs an ECS fan-out item through its own request Pass inside both Map processors', () => {
    const p = pipeline({ name: 'ecs-fan-out' }, () => {
      const { shards } = shard({}, { id: 'a' });
      const heavy = step(
        { name: 'heavy', inputs: { shard: Num }, outputs: { score: Num }, runner: 'ecs', retries: 1 },
        () => ({ score: 1 }),
      );
      heavy.map({ shard: shards }, { over: 'shard' });
    });
    const { definition } = expectValid(compileToAsl(p, OPTIONS), build(p));
    const processor = (definition.States.DistributedMap_heavy as { ItemProcessor: StateMachineFragment }).ItemProcessor;
    expect(processor.StartAt).toBe('DistributedRequest_heavy');
    expect(processor.States.DistributedRequest_heavy).toMatchObject({
      Parameters: { stepId: 'heavy', 'runId.$': '$.runId', 'mapIndex.$': '$.mapIndex' },
      Next: 'DistributedStep_heavy',
    });
    expect(
      (processor.States.DistributedStep_heavy as TaskState).Parameters!.Overrides as { ContainerOverrides: unknown[] },
    ).toMatchObject({
      ContainerOverrides: [{ Environment: [{}, { Name: 'STACKLINE_TASK_TOKEN', 'Value.$': '$$.Task.Token' }] }],
    });
    expect(processor.States.DistributedStep_heavy).toMatchObject({
      Resource: 'arn:aws:states:::ecs:runTask.waitForTaskToken',
      HeartbeatSeconds: ECS_HEARTBEAT_SECONDS,
      Retry: [
        { ErrorEquals: ['NonRetriableError'], MaxAttempts: 0 },
        TRANSIENT_RETRIER,
        { ErrorEquals: ['States.TaskFailed', 'States.Timeout'], MaxAttempts: 1 },
      ],
      OutputPath: null,
      End: true,
    });
  });

  it("turns a step's retries and timeout into TimeoutSeconds and retriers that never retry NonRetriableError", () => {
    const { definition } = compileToAsl(retrying, OPTIONS);
    expect(definition.States.Step_flaky).toMatchObject({
      // A Lambda step's Task waits as long as the function may run: the runner enforces timeoutMs.
      TimeoutSeconds: 900,
      Retry: [
        { ErrorEquals: ['NonRetriableError'], MaxAttempts: 0 },
        {
          ErrorEquals: [
            'Lambda.ServiceException',
            'Lambda.AWSLambdaException',
            'Lambda.SdkClientException',
            'Lambda.TooManyRequestsException',
          ],
          IntervalSeconds: 1,
          MaxAttempts: 3,
          BackoffRate: 2,
        },
        TRANSIENT_RETRIER,
        {
          ErrorEquals: ['States.TaskFailed', 'States.Timeout'],
          IntervalSeconds: 2,
          MaxAttempts: 4,
          BackoffRate: 1.5,
          MaxDelaySeconds: 20,
        },
      ],
    });
    expect((definition.States.Step_publish as TaskState).Retry?.[3]).toEqual({
      ErrorEquals: ['States.TaskFailed', 'States.Timeout'],
      IntervalSeconds: 1,
      MaxAttempts: 2,
      BackoffRate: 2,
      MaxDelaySeconds: 60,
    });
    // Without retries: only the Lambda service retrier and the transient one.
    expect((definition.States.Step_fetch as TaskState).Retry).toEqual([
      (definition.States.Step_flaky as TaskState).Retry![1],
      TRANSIENT_RETRIER,
    ]);
  });

  it("takes the deployed function's timeout into account: a Lambda step's Task waits for it, and a timeoutMs that does not fit before the runner's early answer is refused", () => {
    const fits = compileToAsl(retrying, { ...OPTIONS, lambdaTimeoutSeconds: 700 }).definition;
    expect(fits.States.Step_flaky).toMatchObject({ TimeoutSeconds: 700 });
    expect(fits.States.Step_publish).toMatchObject({ TimeoutSeconds: 700 });
    // `publish` has timeoutMs 600000: more than 300 s minus the 5 s early answer.
    let error: PipelineDefinitionError | undefined;
    try {
      compileToAsl(retrying, { ...OPTIONS, lambdaTimeoutSeconds: 300 });
    } catch (thrown) {
      error = thrown as PipelineDefinitionError;
    }
    expect(error).toBeInstanceOf(PipelineDefinitionError);
    expect(error!.context.problems).toEqual([
      expect.stringMatching(
        /step "publish" has timeoutMs 600000 \(600 s\), but the step runner Lambda stops after 300 s and answers 5000 ms before that: use timeoutMs ≤ 295000, raise the function's timeout/,
      ),
    ]);
    expect(() => compileToAsl(retrying, { ...OPTIONS, lambdaTimeoutSeconds: 901 })).toThrow(
      /lambdaTimeoutSeconds must be a whole number from 1 to 900 \(got 901\)/,
    );
  });

  it("retries the runner's transient errors with full jitter on every Lambda Task state", () => {
    const { definition } = compileToAsl(retrying, OPTIONS);
    const tasks = Object.entries(definition.States).filter(([, state]) => state.Type === 'Task') as [
      string,
      TaskState,
    ][];
    expect(tasks.length).toBeGreaterThan(3);
    for (const [name, task] of tasks) {
      expect(task.Retry, name).toContainEqual(TRANSIENT_RETRIER);
    }
    expect(TRANSIENT_RETRIER).toMatchObject({ JitterStrategy: 'FULL' });
    expect(TRANSIENT_RETRIER.ErrorEquals).toEqual(
      expect.arrayContaining([
        'ThrottlingException',
        'SlowDown',
        'TransactionConflictException',
        'StepInProgressError',
      ]),
    );
    // Recording a failure that itself fails still ends the execution (failed), never strands it.
    expect((definition.States.RecordFailure as TaskState).Catch).toEqual([
      { ErrorEquals: ['States.ALL'], ResultPath: '$.recordFailureError', Next: 'HasFailureCause' },
    ]);
  });

  it('builds the graph with the default parameters unless params are given', () => {
    const p = pipeline(
      { name: 'sharded', parameters: z.object({ shards: z.number().int().default(2) }) },
      ({ shards }) => {
        for (let i = 0; i < shards; i++) source({}, { id: `shard${i}` });
      },
    );
    expect(compileToAsl(p, OPTIONS).definition.States).toHaveProperty('Parallel_shard0_shard1');
    expect(compileToAsl(p, { ...OPTIONS, params: { shards: 3 } }).definition.States).toHaveProperty(
      'Parallel_shard0_shard1_shard2',
    );
  });

  it('explains that the default parameters are used when they do not validate', () => {
    const p = pipeline({ name: 'needs-params', parameters: z.object({ table: z.string() }) }, () => {
      source();
    });
    expect(() => compileToAsl(p, OPTIONS)).toThrow(ValidationError);
    expect(() => compileToAsl(p, OPTIONS)).toThrow(/default parameters.*Give every pipeline parameter a default/);
  });

  it('compiles a 1,000-step linear pipeline under 1 MiB', () => {
    const p = linearOf(1000);
    const compiled = compileToAsl(p, OPTIONS);
    expect(compiled.sizeBytes).toBeLessThan(1_048_576);
    expect(compiled.stateCount).toBe(1000 + 12);
    expect(transitionProblems(compiled.definition)).toEqual([]);
  });
});

describe('the test checkers', () => {
  it('report a step that can start before its upstream step, and a step that can run twice', () => {
    const graph = build(linear);
    const { definition } = compileToAsl(linear, OPTIONS);
    const swapped = structuredClone(definition);
    Object.assign(swapped.States.StartRun!, { Next: 'Step_b' });
    Object.assign(swapped.States.StartRunWithRunId!, { Next: 'Step_b' });
    Object.assign(swapped.States.Step_b!, { Next: 'Step_a' });
    Object.assign(swapped.States.Step_a!, { Next: 'Step_c' });
    expect(orderingReport(swapped, graph).problems).toEqual(['run:b can start before run:a']);

    const twice = structuredClone(definition);
    twice.States.Step_b_again = Object.assign(structuredClone(twice.States.Step_b!), { Next: 'FinishRun' });
    Object.assign(twice.States.Step_c!, { Next: 'Step_b_again' });
    expect(orderingReport(twice, graph).problems).toEqual(['run:b can run twice']);

    const unfinished = structuredClone(definition);
    Object.assign(unfinished.States.Step_c!, { Next: undefined, End: true });
    expect(orderingReport(unfinished, graph).problems).toEqual([
      'a successful execution does not always call finish-run',
    ]);
  });

  it('report transitions to missing states and unreachable states', () => {
    const { definition } = compileToAsl(diamond, OPTIONS);
    const broken = structuredClone(definition);
    const branch = (broken.States.Parallel_b_c as { Branches: StateMachineFragment[] }).Branches[0]!;
    Object.assign(branch.States.Step_b!, { End: undefined, Next: 'Step_d' });
    expect(transitionProblems(broken)).toEqual(['Parallel_b_c branch 0: "Step_b" goes to missing state "Step_d"']);
    delete (broken.States.HasRunId as { Default?: string }).Default;
    expect(transitionProblems(broken)).toContain('top level: "StartRun" is unreachable');
  });
});

describe('DAG decomposition', () => {
  it('arranges series-parallel DAGs exactly: nested forks and joins, several roots, several sinks', () => {
    const cases: Array<[Record<string, string[]>, string]> = [
      [{ a: [], b: ['a'], c: ['b'] }, 'a > b > c'],
      [{ a: [], b: ['a'], c: ['a'], d: ['b', 'c'] }, 'a > (b | c) > d'],
      [{ a: [], b: ['a'], c: ['b'], d: ['a'], e: ['c', 'd'] }, 'a > ([b > c] | d) > e'],
      [{ a: [], b: [], c: ['a', 'b'], d: ['c'], e: ['c'] }, '(a | b) > c > (d | e)'],
      [
        { a: [], b: ['a'], c: ['a'], d: ['b'], e: ['b'], f: ['d', 'e'], g: ['c', 'f'] },
        'a > ([b > (d | e) > f] | c) > g',
      ],
      // a transitive edge (a→c) changes nothing
      [{ a: [], b: ['a'], c: ['a', 'b'] }, 'a > b > c'],
      // complete bipartite: every one of c, d needs both a and b, so one join is exact
      [{ a: [], b: [], c: ['a', 'b'], d: ['a', 'b'] }, '(a | b) > (c | d)'],
      // independent chains stay independent
      [{ a: [], b: ['a'], x: [], y: ['x'] }, '([a > b] | [x > y])'],
    ];
    for (const [edges, expected] of cases) {
      const graph = graphOf(edges);
      expect(shape(planGraph(graph))).toBe(expected);
      const { stepsBefore } = orderingReport(compileGraphToAsl(graph, 'g', OPTIONS).definition, graph);
      const ancestors = ancestorsOf(graph);
      for (const node of graph.nodes)
        expect([node.id, stepsBefore.get(node.id)]).toEqual([node.id, ancestors.get(node.id)]);
    }
  });

  it('falls back to one barrier for an N-shaped DAG (a→c, a→d, b→d) and documents the extra wait', () => {
    const graph = build(nShape);
    expect(shape(planGraph(graph))).toBe('(a | b) > (c | d)');
    const { stepsBefore, problems } = orderingReport(compileToAsl(nShape, OPTIONS).definition, graph);
    expect(problems).toEqual([]);
    // c waits for b although it does not depend on it: the one false dependency of this fallback.
    expect(stepsBefore.get('c')).toEqual(new Set(['a', 'b']));
    expect(stepsBefore.get('d')).toEqual(new Set(['a', 'b']));
  });

  it('keeps series-parallel structure exact on random series-parallel DAGs', () => {
    const random = mulberry32(7);
    for (let trial = 0; trial < 150; trial++) {
      const edges = randomSeriesParallel(random, 2 + Math.floor(random() * 14));
      const graph = graphOf(edges);
      const compiled = compileGraphToAsl(graph, 'random-sp', OPTIONS);
      const { problems, stepsBefore } = orderingReport(compiled.definition, graph);
      expect(problems).toEqual([]);
      const ancestors = ancestorsOf(graph);
      for (const node of graph.nodes)
        expect([trial, node.id, stepsBefore.get(node.id)]).toEqual([trial, node.id, ancestors.get(node.id)]);
    }
  });

  it('respects every edge of random DAGs, series-parallel or not, and the ASL validates', () => {
    const random = mulberry32(42);
    for (let trial = 0; trial < 150; trial++) {
      const n = 2 + Math.floor(random() * 16);
      const density = 0.1 + random() * 0.4;
      const edges: Record<string, string[]> = {};
      for (let i = 0; i < n; i++)
        edges[`n${i}`] = Array.from({ length: i }, (_, j) => `n${j}`).filter(() => random() < density);
      const graph = graphOf(edges);
      const compiled = compileGraphToAsl(graph, 'random', OPTIONS);
      expect([trial, orderingReport(compiled.definition, graph).problems]).toEqual([trial, []]);
      expect([trial, transitionProblems(compiled.definition)]).toEqual([trial, []]);
      // asl-validator takes ~0.3 s per definition: sample it.
      if (trial % 50 === 0) expect(aslValidator(JSON.parse(compiled.json)).isValid).toBe(true);
    }
  });
});

describe('state names', () => {
  it('keeps names within 80 characters and distinct when step ids are long', () => {
    const long = (c: string) => `${'x'.repeat(70)}${c.repeat(10)}`;
    const graph = graphOf({ [long('a')]: [], [long('b')]: [], [long('c')]: [long('a'), long('b')] });
    const compiled = expectValid(compileGraphToAsl(graph, 'long-ids', OPTIONS), graph);
    const names = allStates(compiled.definition).map(([name]) => name);
    expect(Math.max(...names.map((n) => n.length))).toBe(80);
    expect(new Set(names).size).toBe(names.length);
  });

  it('adds a suffix when two derived names collide', () => {
    // Parallel_<heads>: (a_b | c) and (a | b_c) both read "Parallel_a_b_c".
    const graph = graphOf({ a_b: [], c: [], j1: ['a_b', 'c'], a: ['j1'], b_c: ['j1'], j2: ['a', 'b_c'] });
    const compiled = expectValid(compileGraphToAsl(graph, 'collide', OPTIONS), graph);
    const names = allStates(compiled.definition).map(([name]) => name);
    expect(names).toContain('Parallel_a_b_c');
    expect(names).toContain('Parallel_a_b_c_2');
  });

  it('gives each fan-out its own JSONPath-safe key under $.maps', () => {
    const p = pipeline({ name: 'two-fan-outs' }, () => {
      const { shards } = shard({}, { id: 'a' });
      score.map({ shard: shards }, { id: 'x-y', over: 'shard' });
      score.map({ shard: shards }, { id: 'x_y', over: 'shard' });
    });
    const { definition } = expectValid(compileToAsl(p, OPTIONS), build(p));
    const all = Object.fromEntries(allStates(definition));
    expect(all['PlanMap_x-y']).toMatchObject({ ResultSelector: { 'x_y.$': '$.Payload' } });
    expect(all.PlanMap_x_y).toMatchObject({ ResultSelector: { 'x_y_2.$': '$.Payload' } });
    expect(all.Map_x_y).toMatchObject({ ItemsPath: '$.maps.x_y_2.items' });
  });
});

describe('compile errors', () => {
  const compileError = (fn: () => unknown): PipelineDefinitionError => {
    try {
      fn();
    } catch (error) {
      if (error instanceof PipelineDefinitionError) return error;
      throw error;
    }
    throw new Error('expected a PipelineDefinitionError');
  };

  it('rejects runner ecs without ECS settings, naming the step', () => {
    const error = compileError(() => compileToAsl(mixed, { lambdaFunctionArn: LAMBDA_ARN }));
    expect(error.message).toMatch(/step "train" uses runner 'ecs', but no ECS settings were given: pass options\.ecs/);
  });

  it('lists every problem at once: GPUs, Lambda timeouts over 15 minutes, backoff rates below 1, Fargate sizes', () => {
    const graph = graphOf(
      { gpu: [], slow: ['gpu'], shrinking: ['slow'], odd: ['shrinking'] },
      {
        gpu: { resources: { gpu: 1 } },
        slow: { timeoutMs: 20 * 60_000 },
        shrinking: { retries: { maxRetries: 3, backoffRate: 0.5 } },
        odd: { runner: 'ecs', resources: { cpu: 1, memoryMb: 16_384 } },
      },
    );
    const error = compileError(() => compileGraphToAsl(graph, 'bad', OPTIONS));
    expect(error.context.problems).toEqual([
      expect.stringMatching(/step "gpu" asks for 1 GPU\(s\), but neither Lambda nor ECS on Fargate offers GPUs/),
      expect.stringMatching(
        /step "slow" has timeoutMs 1200000 \(1200 s\), but the step runner Lambda stops after 900 s and answers 5000 ms before that: use timeoutMs ≤ 895000/,
      ),
      expect.stringMatching(
        /step "shrinking" has retries.backoffRate 0.5, but Step Functions requires a BackoffRate ≥ 1/,
      ),
      expect.stringMatching(
        /step "odd" asks for 1 vCPU with 16384 MiB, which Fargate does not offer: with 1 vCPU use 2048 to 8192 MiB/,
      ),
    ]);
    expect(error.message).toMatch(/^Pipeline "bad" cannot be compiled to Step Functions:\n {2}- /);
  });

  it('rejects a fan-out over an input the step does not have', () => {
    const graph = build(fanOut);
    graph.byId.get('b')!.map = { input: 'rows' };
    expect(() => compileGraphToAsl(graph, 'fan-out', OPTIONS)).toThrow(
      /fans out over input "rows", which is not one of its connected inputs \(shard\)/,
    );
  });

  it('rejects a definition over 1 MiB with the measured size and what to do', () => {
    const error = compileError(() => compileToAsl(linearOf(2000), OPTIONS));
    expect(error.message).toMatch(
      /^Pipeline "linear-2000" compiles to a state machine definition of 1,\d{3},\d{3} bytes \(2012 states for 2000 steps\), over the Step Functions limit of 1,048,576 bytes \(1 MiB\)\. Split it into smaller pipelines/,
    );
    expect(error.context).toMatchObject({ limitBytes: 1_048_576, stateCount: 2012 });
  });

  it('rejects invalid options with a ValidationError', () => {
    expect(() => compileToAsl(linear, { lambdaFunctionArn: '' })).toThrow(ValidationError);
    expect(() => compileToAsl(linear, { ...OPTIONS, ecs: { ...ECS, subnets: [] } })).toThrow(
      /ecs\.subnets must list 1 to 16/,
    );
    expect(() => compileToAsl(linear, { ...OPTIONS, defaultMapConcurrency: -1 })).toThrow(/defaultMapConcurrency/);
  });

  it('rejects hand-built graphs whose nodes are not in topological order', () => {
    const graph = graphOf({ a: [], b: ['a'] });
    graph.nodes.reverse();
    expect(() => compileGraphToAsl(graph, 'g', OPTIONS)).toThrow(/step "b" comes before its upstream step "a"/);
  });
});

// --- execution on a local ASL interpreter ----------------------------------------------------

type Runner = (request: Record<string, unknown>) => unknown;

/**
 * Runs a compiled definition on aws-local-stepfunctions with every Task bound to `runner` (ECS
 * tasks get the request the container would read from STACKLINE_REQUEST). Returns the requests
 * in call order, each checked against the step runner protocol, and the execution's outcome.
 */
async function execute(compiled: CompiledStateMachine, input: object, runner: Runner) {
  const requests: Array<Record<string, unknown>> = [];
  const handlers: Record<string, (input: unknown) => Promise<unknown>> = {};
  for (const [name, state] of allStates(compiled.definition)) {
    if (state.Type !== 'Task') continue;
    handlers[name] = async (effective) => {
      const params = effective as {
        Payload?: Record<string, unknown>;
        Overrides?: { ContainerOverrides: Array<{ Environment: Array<{ Value: string }> }> };
      };
      const request = params.Payload ?? JSON.parse(params.Overrides!.ContainerOverrides[0]!.Environment[0]!.Value);
      StepRunnerRequest.parse(request);
      requests.push(request);
      const payload = await runner(request);
      return params.Payload ? { Payload: payload } : { TaskArn: 'arn:aws:ecs:task/1' };
    };
  }
  const machine = new StateMachine(compiled.definition as never);
  const execution = machine.run(
    input as never,
    {
      overrides: { taskResourceLocalHandlers: handlers, retryIntervalOverrides: retryOverrides(compiled.definition) },
      // The interpreter has no task tokens: a fixed one stands in for `$$.Task.Token` (ECS tasks).
      context: {
        Execution: { Id: 'arn:aws:states:eu-west-1:123456789012:execution:test:1' },
        Task: { Token: 'token' },
      },
    } as never,
  );
  try {
    return { requests, output: (await execution.result) as Record<string, unknown>, error: undefined };
  } catch (error) {
    return { requests, output: undefined, error: error as { name?: string; message: string; cause?: unknown } };
  }
}

function retryOverrides(definition: StateMachineDefinition): Record<string, number> {
  return Object.fromEntries(
    allStates(definition)
      .filter(([, s]) => 'Retry' in s && s.Retry)
      .map(([name]) => [name, 0]),
  );
}

const succeed: Runner = (request) => {
  switch (request.action) {
    case 'start-run':
      return { runId: (request.runId as string | undefined) ?? 'run_1' };
    case 'plan-map':
      return { count: 3, items: [0, 1, 2] };
    case 'finish-run':
      return { runId: request.runId, status: request.status };
    default:
      return { runId: request.runId, stepId: request.stepId, stepRunId: 'srun_1', status: 'completed' };
  }
};

function runnerError(name: string, message: string): Error {
  const error = new Error(message);
  error.name = name;
  return error;
}

describe('compiled state machines on a local ASL interpreter', () => {
  const label = (r: Record<string, unknown>) =>
    [r.action, r.stepId, r.mapIndex].filter((v) => v !== undefined).join(':');

  it('calls the runner in protocol order and ends with a small state', async () => {
    const { requests, output } = await execute(
      compileToAsl(fanOut, OPTIONS),
      { pipeline: 'fan-out', parameters: { n: 1 } },
      succeed,
    );
    expect(requests.map(label)).toEqual([
      'start-run',
      'run-step:a',
      'plan-map:b',
      'run-step:b:0',
      'run-step:b:1',
      'run-step:b:2',
      'collect-map:b',
      'run-step:c',
      'finish-run',
    ]);
    expect(requests[0]).toEqual({
      action: 'start-run',
      pipeline: 'fan-out',
      parameters: { n: 1 },
      tags: [],
      executionArn: 'arn:aws:states:eu-west-1:123456789012:execution:test:1',
      input: { pipeline: 'fan-out', parameters: { n: 1 }, tags: [] },
    });
    expect(output).toEqual({
      pipeline: 'fan-out',
      parameters: { n: 1 },
      tags: [],
      run: { runId: 'run_1' },
      maps: { b: { count: 3, items: [0, 1, 2] } },
    });
  });

  it('passes the runId from the input to start-run and to every step', async () => {
    const { requests } = await execute(
      compileToAsl(mixed, OPTIONS),
      { pipeline: 'mixed-runners', parameters: {}, runId: 'run_cli', tags: ['team:ml'] },
      succeed,
    );
    expect(requests.map(label)).toEqual([
      'start-run',
      'run-step:prepare',
      'run-step:train',
      'run-step:evaluate',
      'finish-run',
    ]);
    expect(requests.every((r) => r.runId === 'run_cli')).toBe(true);
    expect(requests[0]).toMatchObject({ action: 'start-run', tags: ['team:ml'] });
  });

  it('records a failed step with finish-run failed, then fails the execution with StepFailed and its cause', async () => {
    const { requests, error } = await execute(
      compileToAsl(diamond, OPTIONS),
      { pipeline: 'diamond', parameters: {} },
      (request) => {
        if (request.stepId === 'c') throw runnerError('ValueError', 'column "y" is missing');
        return succeed(request);
      },
    );
    const last = requests[requests.length - 1]!;
    expect(last).toMatchObject({
      action: 'finish-run',
      status: 'failed',
      runId: 'run_1',
      error: { Error: 'ValueError', Cause: 'column "y" is missing' },
    });
    expect(requests.map(label)).not.toContain('run-step:d');
    expect(error?.cause).toMatchObject({ name: 'StepFailed', message: 'column "y" is missing' });
  });

  it('retries a failing step up to its retries, but never a NonRetriableError', async () => {
    let attempts = 0;
    const flakyOnce = await execute(
      compileToAsl(retrying, OPTIONS),
      { pipeline: 'retries-timeouts', parameters: {} },
      (request) => {
        if (request.stepId === 'flaky' && attempts++ < 2) throw runnerError('ConnectionError', 'reset');
        return succeed(request);
      },
    );
    expect(flakyOnce.requests.filter((r) => r.stepId === 'flaky')).toHaveLength(3);
    expect(flakyOnce.requests[flakyOnce.requests.length - 1]).toMatchObject({
      action: 'finish-run',
      status: 'completed',
    });

    const nonRetriable = await execute(
      compileToAsl(retrying, OPTIONS),
      { pipeline: 'retries-timeouts', parameters: {} },
      (request) => {
        if (request.stepId === 'flaky') throw runnerError('NonRetriableError', 'bad input');
        return succeed(request);
      },
    );
    expect(nonRetriable.requests.filter((r) => r.stepId === 'flaky')).toHaveLength(1);
    expect(nonRetriable.requests[nonRetriable.requests.length - 1]).toMatchObject({
      action: 'finish-run',
      status: 'failed',
      error: { Error: 'NonRetriableError' },
    });
  });
});

// --- random graphs ---------------------------------------------------------------------------

function mulberry32(seed: number): () => number {
  let a = seed;
  return () => {
    a = (a + 0x6d2b79f5) | 0;
    let t = Math.imul(a ^ (a >>> 15), 1 | a);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/**
 * A random series-parallel DAG with `size` nodes: series composition joins every maximal node
 * of the first part to every minimal node of the second; sometimes adds a transitive edge.
 */
function randomSeriesParallel(random: () => number, size: number): Record<string, string[]> {
  let counter = 0;
  type Part = { ids: string[]; edges: Record<string, string[]>; minimal: string[]; maximal: string[] };
  const make = (n: number): Part => {
    if (n === 1) {
      const id = `v${counter++}`;
      return { ids: [id], edges: { [id]: [] }, minimal: [id], maximal: [id] };
    }
    const left = 1 + Math.floor(random() * (n - 1));
    const a = make(left);
    const b = make(n - left);
    if (random() < 0.5) {
      return {
        ids: [...a.ids, ...b.ids],
        edges: { ...a.edges, ...b.edges },
        minimal: [...a.minimal, ...b.minimal],
        maximal: [...a.maximal, ...b.maximal],
      };
    }
    const edges = { ...a.edges, ...b.edges };
    for (const m of b.minimal) edges[m] = [...edges[m]!, ...a.maximal];
    if (random() < 0.3) {
      const from = a.ids[Math.floor(random() * a.ids.length)]!;
      const to = b.ids[Math.floor(random() * b.ids.length)]!;
      if (!edges[to]!.includes(from)) edges[to] = [...edges[to]!, from];
    }
    return { ids: [...a.ids, ...b.ids], edges, minimal: a.minimal, maximal: b.maximal };
  };
  const part = make(size);
  return Object.fromEntries(part.ids.map((id) => [id, part.edges[id]!]));
}
