/**
 * Size of what `stackline bundle` deploys: the minified step runner Lambda bundle, without user
 * code (a module exporting one trivial pipeline) and with the reference training pipeline, and
 * what importing it costs a fresh Node process (a Lambda cold start) next to an empty module.
 *
 * The Lambda bundle imports AWS SDK v3 from the Lambda runtime, so the cold import runs it from a
 * directory that provides `@aws-sdk/*` (this project's copy) the way the runtime does: the figure
 * includes loading the SDK clients, as a cold start on Lambda does.
 */

import { execFile } from 'node:child_process';
import { copyFile, mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { promisify } from 'node:util';
import { bundlePipeline } from '../lib/bundle/bundle-pipeline.ts';
import { createLambdaRuntimeDir } from '../test/support/lambda-runtime.ts';
import { type Benchmark, median, metric } from './stats.ts';

const execFileAsync = promisify(execFile);

const BENCH_DIR = dirname(fileURLToPath(import.meta.url));
const REFERENCE_TRAINING = join(BENCH_DIR, '../examples/reference/training.ts');
const KiB = 1024;
const KB = 1000;
/** The step runner without user code, minified (issue 13: below 300 KB). */
const TARGET_KB = 300;
const IMPORT_RUNS = 5;

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
    const runnerKB = runner.lambda.bytes / KB;
    // The same runner with the SDK inside: what the runtime's SDK saves in size, and costs in time.
    const withSdk = await bundlePipeline({
      pipelineFile: trivialFile,
      outDir: join(dir, 'trivial-with-sdk'),
      bundleAwsSdk: true,
    });
    // A task root below a node_modules holding only @aws-sdk, as on Lambda (/var/runtime).
    const runtimeDir = await createLambdaRuntimeDir();
    let bundleImportMs: number;
    let withSdkImportMs: number;
    let emptyImportMs: number;
    try {
      const taskRoot = join(runtimeDir, 'task');
      await mkdir(taskRoot);
      await copyFile(runner.lambda.path, join(taskRoot, 'index.mjs'));
      await copyFile(withSdk.lambda.path, join(taskRoot, 'with-sdk.mjs'));
      const emptyModule = join(taskRoot, 'empty.mjs');
      await writeFile(emptyModule, 'export const handler = async () => ({});\n');
      emptyImportMs = await coldImportMs(emptyModule);
      bundleImportMs = await coldImportMs(join(taskRoot, 'index.mjs'));
      withSdkImportMs = await coldImportMs(join(taskRoot, 'with-sdk.mjs'));
    } finally {
      await rm(runtimeDir, { recursive: true, force: true });
    }
    const metrics: BundleMetric[] = [
      {
        label: 'step runner Lambda bundle, minified, without user code',
        value: round(runnerKB),
        unit: 'KB',
        target: `< ${TARGET_KB} KB`,
        ok: runnerKB < TARGET_KB,
      },
      { label: 'bundle time (Lambda and container entries)', value: Math.round(bundleMs), unit: 'ms' },

      {
        label: `cold import of the bundle in a fresh node, runtime's AWS SDK included (median of ${IMPORT_RUNS})`,
        value: round(bundleImportMs),
        unit: 'ms',
      },
      { label: 'cold import of an empty module (baseline)', value: round(emptyImportMs), unit: 'ms' },
      { label: 'cold import: bundle / empty module', value: round(bundleImportMs / emptyImportMs), unit: '×' },
      {
        label: 'the same with the AWS SDK inside the bundle (bundleAwsSdk), minified',
        value: round(withSdk.lambda.bytes / KB),
        unit: 'KB',
      },
      {
        label: 'cold import with the SDK inside / with the runtime SDK',
        value: round(withSdkImportMs / bundleImportMs),
        unit: '×',
      },
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

/**
 * The time `import()` of a module takes in a fresh Node process (what a Lambda cold start pays
 * for the code, before the handler runs), median of a few processes.
 */
async function coldImportMs(file: string): Promise<number> {
  const script = `const t = performance.now(); await import(${JSON.stringify(pathToFileURL(file).href)}); process.stdout.write(String(performance.now() - t));`;
  const samples: number[] = [];
  for (let i = 0; i < IMPORT_RUNS; i++) {
    const { stdout } = await execFileAsync(process.execPath, ['--input-type=module', '-e', script]);
    samples.push(Number(stdout));
  }
  return median(samples);
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
          : metric(m.label, m.value, m.unit, { op: '<', value: TARGET_KB }),
      ),
    };
  },
};
