/**
 * Compiler benchmark: how long `compileToAsl` takes on large pipelines (building the graph with
 * the DSL, decomposing it, rendering and serializing the ASL), and how big the definitions are
 * against the 1 MiB Step Functions limit.
 */
import { z } from 'zod';
import { compileToAsl, planGraph, STEP_FUNCTIONS_LIMITS } from '../lib/compiler/compile-to-asl.ts';
import { type PipelineDefinition, pipeline } from '../lib/dsl/pipeline.ts';
import { step } from '../lib/dsl/step.ts';
import { collectGarbage, median } from './stats.ts';

/** Compile time target for pipelines of about 1,000 steps. */
const COMPILE_TARGET_MS = 50;
const LAMBDA_ARN = 'arn:aws:lambda:us-east-1:123456789012:function:stackline-step-runner';

export interface CompileBenchMetric {
  label: string;
  value: number;
  unit: string;
  target?: string;
  ok?: boolean;
}

const value = step({ name: 'bench_value', outputs: { value: z.number() } }, () => ({ value: 0 }));
const next = step({ name: 'bench_next', inputs: { x: z.number() }, outputs: { value: z.number() } }, ({ inputs }) => ({
  value: inputs.x + 1,
}));

/** `s0 → s1 → … → s<n-1>`. */
function linear(steps: number): PipelineDefinition {
  return pipeline({ name: `bench_linear_${steps}` }, () => {
    let ref = value({}, { id: 's0' }).value;
    for (let i = 1; i < steps; i++) ref = next({ x: ref }, { id: `s${i}` }).value;
  });
}

/** `blocks` diamonds in a row, each `fork → width parallel steps → join`: a Parallel per block. */
function diamonds(blocks: number, width: number): PipelineDefinition {
  return pipeline({ name: `bench_diamonds_${blocks}x${width}` }, () => {
    let previous: string[] = [];
    for (let b = 0; b < blocks; b++) {
      value({}, { id: `b${b}_fork`, after: previous });
      const middle = Array.from({ length: width }, (_, w) => `b${b}_m${w}`);
      for (const id of middle) value({}, { id, after: [`b${b}_fork`] });
      value({}, { id: `b${b}_join`, after: middle });
      previous = [`b${b}_join`];
    }
  });
}

/** Each step waits for two of the 20 before it: nothing like series-parallel, all fallback. */
function tangled(steps: number): PipelineDefinition {
  let seed = 1;
  const random = () => {
    seed = (seed * 1_103_515_245 + 12_345) % 2_147_483_648;
    return seed / 2_147_483_648;
  };
  return pipeline({ name: `bench_tangled_${steps}` }, () => {
    for (let i = 0; i < steps; i++) {
      const after = new Set<string>();
      for (let j = 0; i > 0 && j < 2; j++) after.add(`t${i - 1 - Math.floor(random() * Math.min(20, i))}`);
      value({}, { id: `t${i}`, after: [...after] });
    }
  });
}

function timeMedian(repeat: number, fn: () => unknown): number {
  for (let i = 0; i < 3; i++) fn(); // warm-up: JIT
  const samples: number[] = [];
  for (let i = 0; i < repeat; i++) {
    collectGarbage();
    const start = performance.now();
    fn();
    samples.push(performance.now() - start);
  }
  return median(samples);
}

/**
 * Compile time (median of 20 runs, 5 with `quick`) of a 1,000-step linear pipeline and of a
 * diamond-heavy one of 900 steps (the largest such pipeline under 1 MiB), their ASL sizes and
 * state counts, and the decomposition time of a 1,000-step DAG that is not series-parallel.
 */
export async function benchCompile(options: {
  quick?: boolean;
}): Promise<{ name: string; metrics: CompileBenchMetric[] }> {
  const repeat = options.quick ? 5 : 20;
  const limitKiB = STEP_FUNCTIONS_LIMITS.definitionBytes / 1024;
  const metrics: CompileBenchMetric[] = [];
  const cases = [
    { label: '1,000-step linear', pipeline: linear(1000) },
    { label: '900-step diamond-heavy (90 × fork → 8 → join)', pipeline: diamonds(90, 8) },
  ];
  for (const { label, pipeline: p } of cases) {
    const compiled = compileToAsl(p, { lambdaFunctionArn: LAMBDA_ARN });
    const ms = timeMedian(repeat, () => compileToAsl(p, { lambdaFunctionArn: LAMBDA_ARN }));
    const kib = compiled.sizeBytes / 1024;
    metrics.push(
      {
        label: `compile ${label}`,
        value: ms,
        unit: 'ms',
        target: `< ${COMPILE_TARGET_MS} ms`,
        ok: ms < COMPILE_TARGET_MS,
      },
      { label: `ASL size, ${label}`, value: kib, unit: 'KiB', target: `< ${limitKiB} KiB (1 MiB)`, ok: kib < limitKiB },
      { label: `states, ${label}`, value: compiled.stateCount, unit: 'states' },
    );
  }
  const graph = tangled(1000).build({});
  metrics.push({
    label: 'decompose a 1,000-step non-series-parallel DAG (fallback cuts)',
    value: timeMedian(repeat, () => planGraph(graph)),
    unit: 'ms',
  });
  return { name: 'compile', metrics };
}
