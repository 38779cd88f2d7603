/**
 * Size of what `stackline bundle` deploys: the minified step runner Lambda bundle, without user
 * code (a module exporting one trivial pipeline) and with the reference training pipeline. Cold
 * starts grow with the bundle, so the runner itself should stay under 1 MiB.
 */
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { bundlePipeline } from '../lib/bundle/bundle-pipeline.ts';
import { type Benchmark, metric } from './stats.ts';

const BENCH_DIR = dirname(fileURLToPath(import.meta.url));
const REFERENCE_TRAINING = join(BENCH_DIR, '../examples/reference/training.ts');
const KiB = 1024;
const TARGET_KIB = 1024;

const TRIVIAL_PIPELINE = `import { pipeline, step } from 'stackline';
import { z } from 'zod';

const one = step({ name: 'one', outputs: { n: z.number() } }, () => ({ n: 1 }));
export const trivial = pipeline({ name: 'trivial' }, () => {
  one();
});
`;

export interface BundleMetric {
  label: string;
  value: number;
  unit: string;
  target?: string;
  ok?: boolean;
}

/** Bundles the runner (and, unless `quick`, the reference training pipeline) and reports sizes. */
export async function benchBundle(
  options: { quick?: boolean; tmpDir?: string } = {},
): Promise<{ name: string; metrics: BundleMetric[] }> {
  // Inside the project, so the trivial module resolves `zod` and `stackline` like user code does.
  const parent = options.tmpDir ?? join(BENCH_DIR, '.tmp');
  await mkdir(parent, { recursive: true });
  const dir = await mkdtemp(join(parent, 'bundle-'));
  try {
    const trivialFile = join(dir, 'trivial.ts');
    await writeFile(trivialFile, TRIVIAL_PIPELINE);
    const started = performance.now();
    const runner = await bundlePipeline({ pipelineFile: trivialFile, outDir: join(dir, 'trivial') });
    const bundleMs = performance.now() - started;
    const runnerKiB = runner.lambda.bytes / KiB;
    const metrics: BundleMetric[] = [
      {
        label: 'step runner Lambda bundle, minified, without user code',
        value: round(runnerKiB),
        unit: 'KiB',
        target: `< ${TARGET_KIB} KiB`,
        ok: runnerKiB < TARGET_KIB,
      },
      { label: 'bundle time (Lambda and container entries)', value: Math.round(bundleMs), unit: 'ms' },
    ];
    if (!options.quick) {
      const training = await bundlePipeline({ pipelineFile: REFERENCE_TRAINING, outDir: join(dir, 'training') });
      metrics.push({
        label: 'with the reference training pipeline (ml-random-forest, ...)',
        value: round(training.lambda.bytes / KiB),
        unit: 'KiB',
      });
    }
    return { name: 'bundle', metrics };
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

function round(value: number): number {
  return Math.round(value * 10) / 10;
}

/** {@link benchBundle} in the shape `bench/run.ts` lists benchmarks in. */
export const bundleBenchmark: Benchmark = {
  name: 'bundle',
  description: 'size of the minified step runner Lambda bundle, without and with user code',
  async run({ quick, tmpDir }) {
    const { metrics } = await benchBundle({ quick, tmpDir });
    return {
      metrics: metrics.map((m) =>
        m.target === undefined
          ? metric(m.label, m.value, m.unit)
          : metric(m.label, m.value, m.unit, { op: '<', value: TARGET_KIB }),
      ),
    };
  },
};
