/**
 * The CLI as a user meets it, each figure a whole fresh process: `stackline --help` and a 2-step
 * local run end to end, next to `node -e 0` on the same machine in the same minute (ratios, A/B
 * pair by pair); what the TypeScript loader's hooks cost a process, next to tsx's; peak RSS of 10- to 10,000-step runs (the process's own high-water mark, VmHWM, at
 * exit), held and with V8 sizing the heap; and what hashing the reference scenario's step code costs at start-up, cold (no analysis
 * cache) and warm.
 */
import { execFile } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { promisify } from 'node:util';
import { type Benchmark, type Metric, median, metric } from './stats.ts';

const exec = promisify(execFile);
const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..');
const BIN = join(ROOT, 'bin/stackline.js');

function linearPipeline(steps: number): string {
  return `import { pipeline, step } from 'stackline';
import { z } from 'zod';

const first = step({ name: 'first', outputs: { n: z.number() } }, () => ({ n: 1 }));
const next = step({ name: 'next', inputs: { n: z.number() }, outputs: { n: z.number() } }, ({ inputs }) => ({ n: inputs.n + 1 }));

export const linear = pipeline({ name: 'linear_${steps}' }, () => {
  let { n } = first();
  for (let i = 1; i < ${steps}; i++) ({ n } = next({ n }, { id: \`next_\${i}\` }));
});
`;
}

/** Wall time of one process, in ms. */
async function wallMs(command: string, args: string[], env: NodeJS.ProcessEnv = process.env): Promise<number> {
  const started = performance.now();
  await exec(command, args, { env, cwd: ROOT, maxBuffer: 64 * 1024 * 1024 });
  return performance.now() - started;
}

/** Runs A and B in turn (A B A B …) after a warm-up of each; returns A's median and the median of A/B per pair. */
async function paired(runs: number, a: () => Promise<number>, b: () => Promise<number>) {
  await a();
  await b();
  const as: number[] = [];
  const ratios: number[] = [];
  for (let i = 0; i < runs; i++) {
    const x = await a();
    const y = await b();
    as.push(x);
    ratios.push(x / y);
  }
  return { medianMs: median(as), ratio: median(ratios) };
}

/**
 * What the TypeScript loader alone costs a process: Node registers a hooks module and imports a
 * one-line `.ts` file through it (cached) — Stackline's hooks, next to tsx's (what the CLI
 * registered before), to a hooks module that does nothing (what Node's hooks thread costs by
 * itself) and to importing a one-line `.mjs` file with no hooks at all.
 */
async function typescriptLoaderFigures(dir: string, runs: number, log: (line: string) => void): Promise<Metric[]> {
  const register = join(dir, 'register-hooks.mjs');
  await writeFile(
    register,
    "import { register } from 'node:module';\n" +
      'const [hooks, target] = process.argv.slice(2);\n' +
      "if (hooks !== 'none') register(hooks, import.meta.url, { data: {} });\n" +
      'await import(target);\n',
  );
  const nothing = join(dir, 'hooks-that-do-nothing.mjs');
  await writeFile(
    nothing,
    'export async function resolve(specifier, context, next) {\n  return next(specifier, context);\n}\n',
  );
  const tiny = join(dir, 'tiny.ts');
  await writeFile(tiny, 'export const answer: number = 42;\n');
  await writeFile(join(dir, 'tiny.mjs'), 'export const answer = 42;\n');
  const importing = (hooks: string, target: string) => () =>
    wallMs(process.execPath, [register, hooks, pathToFileURL(target).href]);
  const ours = importing(pathToFileURL(join(ROOT, 'dist/lib/cli/typescript-hooks.js')).href, tiny);
  log('TypeScript loader vs tsx');
  const vsTsx = await paired(runs, ours, importing('tsx/esm', tiny));
  log('TypeScript loader vs hooks that do nothing');
  const vsNothing = await paired(runs, ours, importing(pathToFileURL(nothing).href, join(dir, 'tiny.mjs')));
  log('TypeScript loader vs no hooks');
  const vsNone = await paired(runs, ours, importing('none', join(dir, 'tiny.mjs')));
  return [
    metric('TypeScript hooks: register + import a cached .ts, wall (median)', Math.round(vsTsx.medianMs), 'ms'),
    metric('TypeScript hooks ÷ tsx/esm, same import (median of pairs)', round(vsTsx.ratio), '×'),
    metric('TypeScript hooks ÷ hooks that do nothing, importing a .mjs (median of pairs)', round(vsNothing.ratio), '×'),
    metric('TypeScript hooks ÷ a .mjs import with no hooks (median of pairs)', round(vsNone.ratio), '×'),
  ];
}

/** Peak RSS (MiB) of a CLI process, read from the process itself as it exits, and its wall time (ms). */
async function measureRun(
  args: string[],
  env: NodeJS.ProcessEnv,
  dir: string,
): Promise<{ peakMiB: number; wallMs: number }> {
  const out = join(dir, `rss-${Math.random().toString(36).slice(2)}.txt`);
  const reporter = join(dir, 'report-rss.mjs');
  await writeFile(
    reporter,
    // The process's own high-water mark (KiB), VmHWM on Linux. Not getrusage's maxRSS: Linux carries
    // that across exec from the forked copy of the parent, so a child of a large bench process
    // reported the parent's size (all sizes 129 MiB in a full bench run).
    `import { readFileSync, writeFileSync } from 'node:fs';
const peakKiB = () => {
  try {
    return Number(/^VmHWM:\\s+(\\d+) kB/m.exec(readFileSync('/proc/self/status', 'utf8'))[1]);
  } catch {
    return process.resourceUsage().maxRSS;
  }
};
process.on('exit', () => writeFileSync(${JSON.stringify(out)}, String(peakKiB())));
`,
  );
  const started = performance.now();
  await exec(process.execPath, ['--import', reporter, BIN, ...args], { env, cwd: ROOT, maxBuffer: 256 * 1024 * 1024 });
  const wallMs = performance.now() - started;
  return { peakMiB: Number(await readFile(out, 'utf8')) / 1024, wallMs };
}

async function peakRssMiB(args: string[], env: NodeJS.ProcessEnv, dir: string): Promise<number> {
  return (await measureRun(args, env, dir)).peakMiB;
}

/** Time to compute every reference-scenario step's code hash in a fresh process, in ms. */
async function codeHashMs(): Promise<number> {
  const script = `
const modules = await Promise.all(['feature-engineering', 'training', 'inference'].map((f) => import(${JSON.stringify(`${ROOT}/examples/reference/`)} + f + '.ts')));
const nodes = modules.flatMap((m) => Object.values(m)).filter((p) => p && typeof p.build === 'function').flatMap((p) => p.build(p.parseParameters({})).nodes);
const started = performance.now();
for (const n of nodes) n.spec.codeHash;
console.log(performance.now() - started);`;
  const { stdout } = await exec(
    process.execPath,
    ['--conditions=stackline-source', '--import', 'tsx', '--input-type=module', '-e', script],
    { cwd: ROOT },
  );
  return Number(stdout.trim().split('\n').at(-1));
}

export const cliBenchmark: Benchmark = {
  name: 'cli',
  description:
    'CLI start and a 2-step run vs node -e 0, the TypeScript hooks vs tsx, peak RSS of 10/1,000(/3,000/10,000)-step runs, code hashing at start-up',
  async run({ quick, log }) {
    if (!existsSync(join(ROOT, 'dist/lib/cli/main.js')))
      throw new Error('dist/ is missing: run `npm run build` first.');
    // Inside the project, so `import … from 'stackline'` resolves to this package as for a user.
    const dir = await mkdtemp(join(ROOT, 'bench', '.tmp', 'cli-'));
    const env = { ...process.env, STACKLINE_HOME: join(dir, 'home'), NO_COLOR: '1' };
    const metrics: Metric[] = [];
    try {
      const runs = quick ? 3 : 7;
      const empty = () => wallMs(process.execPath, ['-e', '0']);
      log('stackline --help');
      const help = await paired(runs, () => wallMs(process.execPath, [BIN, '--help']), empty);
      metrics.push(metric('stackline --help, wall (median)', Math.round(help.medianMs), 'ms', { op: '<', value: 250 }));
      metrics.push(metric('stackline --help ÷ node -e 0 (median of pairs)', round(help.ratio), '×'));

      const two = join(dir, 'two.ts');
      await writeFile(two, linearPipeline(2));
      log('2-step run');
      const run = await paired(runs, () => wallMs(process.execPath, [BIN, 'run', two, '--json'], env), empty);
      metrics.push(
        metric('2-step local run end to end, wall (median)', Math.round(run.medianMs), 'ms', { op: '<', value: 400 }),
      );
      metrics.push(metric('2-step run ÷ node -e 0 (median of pairs)', round(run.ratio), '×'));
      metrics.push(...(await typescriptLoaderFigures(dir, runs, log)));

      // Peak RSS of the largest process of a run, 10 vs 1,000 steps (and 3,000 and 10,000 in the full run):
      // flat means the 1,000-step run peaks within 15% of the 10-step one. Median of the measured
      // runs, each after a first run of the same file.
      const rss = new Map<number, number>();
      for (const steps of quick ? [10, 1000] : [10, 1000, 3000, 10_000]) {
        log(`${steps}-step run peak RSS`);
        const file = join(dir, `linear-${steps}.ts`);
        await writeFile(file, linearPipeline(steps));
        // The first run of a new file analyses its code (the TypeScript compiler, tens of MiB, the
        // same at any size); measured after it, the figure is the run's own.
        const first = await peakRssMiB(['run', file, '--no-cache', '--json'], env, dir);
        const peaks: number[] = [];
        for (let i = 0; i < (quick ? 1 : 3); i++)
          peaks.push(await peakRssMiB(['run', file, '--no-cache', '--json'], env, dir));
        const peak = median(peaks);
        rss.set(steps, peak);
        metrics.push(metric(`peak RSS, ${steps}-step run (--no-cache, code analysis cached)`, Math.round(peak), 'MiB'));
        metrics.push(
          metric(`peak RSS, ${steps}-step run, first run of the file (analyses its code)`, Math.round(first), 'MiB'),
        );
      }
      metrics.push(
        metric('peak RSS growth, 1,000 vs 10 steps', round(rss.get(1000)! / rss.get(10)!), '×', {
          op: '<=',
          value: 1.15,
        }),
      );
      for (const steps of [3000, 10_000].filter((n) => rss.has(n)))
        metrics.push(
          metric(
            `peak RSS growth, ${steps.toLocaleString('en')} vs 10 steps`,
            round(rss.get(steps)! / rss.get(10)!),
            '×',
          ),
        );

      // What holding V8's heap through Stackline's bookkeeping (lib/runtime/heap-growth.ts) saves
      // and costs: the 1,000-step run, held and with V8's own sizing, in turn.
      log('1,000-step run, heap held vs V8 sizing');
      const thousand = join(dir, 'linear-1000.ts');
      const v8Sizing = { ...env, STACKLINE_HOLD_HEAP: '0' };
      const args = ['run', thousand, '--no-cache', '--json'];
      const held: number[] = [];
      const own: number[] = [];
      const wallRatios: number[] = [];
      for (let i = 0; i < (quick ? 1 : 5); i++) {
        const a = await measureRun(args, env, dir);
        const b = await measureRun(args, v8Sizing, dir);
        held.push(a.peakMiB);
        own.push(b.peakMiB);
        wallRatios.push(a.wallMs / b.wallMs);
      }
      metrics.push(
        metric(
          'peak RSS, 1,000-step run with V8 sizing the heap (STACKLINE_HOLD_HEAP=0)',
          Math.round(median(own)),
          'MiB',
        ),
        metric('peak RSS, 1,000-step run, held ÷ V8 sizing (median)', round(median(held) / median(own)), '×'),
        metric('wall time, 1,000-step run, held ÷ V8 sizing (median of pairs)', round(median(wallRatios)), '×'),
      );

      log('code hashing');
      await rm(join(ROOT, 'node_modules/.cache/stackline'), { recursive: true, force: true });
      const cold = await codeHashMs();
      const warm: number[] = [];
      for (let i = 0; i < (quick ? 2 : 5); i++) warm.push(await codeHashMs());
      metrics.push(metric('code hashing, reference scenario, cold (no analysis cache)', Math.round(cold), 'ms'));
      metrics.push(
        metric('code hashing, reference scenario, warm (median)', Math.round(median(warm)), 'ms', {
          op: '<',
          value: 100,
        }),
      );
      return { metrics };
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  },
};

function round(value: number): number {
  return Math.round(value * 100) / 100;
}
