/**
 * `npm run bench [-- --quick] [-- --json] [-- --only <name>[,<name>]]`
 *
 * Runs the benchmarks on this machine and prints a report (a table per benchmark with targets and
 * ✓/✗), or with `--json` one JSON object on stdout. Progress goes to stderr. Benchmarks report,
 * tests assert: a missed target is printed clearly but the exit code stays 0; only a benchmark
 * that fails to run (an error, or a failed sanity check) makes it 1.
 *
 * To add a benchmark: export a {@link Benchmark} from a module in this folder and list it below.
 */
import { rmSync } from 'node:fs';
import { mkdir, mkdtemp, rm } from 'node:fs/promises';
import { arch, cpus, loadavg, platform, release, totalmem } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { apiBenchmark } from './api.ts';
import { artifactsBenchmark } from './artifacts.ts';
import { attemptIsolationBenchmark } from './attempt-isolation.ts';
import { awsRequestsBenchmark } from './aws-requests.ts';
import { bundleBenchmark } from './bundle.ts';
import { cliBenchmark } from './cli.ts';
import { benchCompile } from './compile.ts';
import { dashboardBenchmark } from './dashboard.ts';
import { cachedRerunBenchmark, orchestrationBenchmark } from './orchestration.ts';
import { s3ArtifactsBenchmark } from './s3-artifacts.ts';
import {
  type Benchmark,
  type BenchResult,
  formatBytes,
  formatNumber,
  formatResult,
  formatTarget,
  simpleBenchmark,
} from './stats.ts';

const BENCHMARKS: Benchmark[] = [
  orchestrationBenchmark,
  cachedRerunBenchmark,
  artifactsBenchmark,
  s3ArtifactsBenchmark,
  awsRequestsBenchmark,
  simpleBenchmark('compile', 'compileToAsl time and definition size for ~1,000-step pipelines', benchCompile),
  bundleBenchmark,
  apiBenchmark,
  cliBenchmark,
  attemptIsolationBenchmark,
  dashboardBenchmark,
];

const USAGE = `Usage: npm run bench -- [--quick] [--json] [--only <name>[,<name>...]]

  --quick        smaller sizes and fewer repetitions (smoke test)
  --json         print one JSON object on stdout instead of the report
  --only <name>  run only these benchmarks (repeatable or comma-separated)
  --tmp <dir>    where scratch files go (default bench/.tmp; e.g. /dev/shm to take the disk out)

Benchmarks:
${BENCHMARKS.map((b) => `  ${b.name.padEnd(14)} ${b.description}`).join('\n')}
`;

interface Failure {
  name: string;
  error: string;
}

async function main(): Promise<number> {
  const { values } = parseArgs({
    options: {
      json: { type: 'boolean', default: false },
      quick: { type: 'boolean', default: false },
      only: { type: 'string', multiple: true },
      tmp: { type: 'string' },
      help: { type: 'boolean', short: 'h', default: false },
    },
    strict: true,
  });
  if (values.help) {
    process.stdout.write(USAGE);
    return 0;
  }
  const only = (values.only ?? []).flatMap((v) => v.split(',')).filter(Boolean);
  const unknown = only.filter((name) => !BENCHMARKS.some((b) => b.name === name));
  if (unknown.length > 0) {
    process.stderr.write(`Unknown benchmark(s): ${unknown.join(', ')}\n\n${USAGE}`);
    return 2;
  }
  const selected = only.length > 0 ? BENCHMARKS.filter((b) => only.includes(b.name)) : BENCHMARKS;
  const json = values.json;
  const quick = values.quick;
  const log = (message: string) => process.stderr.write(`  … ${message}\n`);

  const benchDir = dirname(fileURLToPath(import.meta.url));
  const tmpParent = values.tmp ?? join(benchDir, '.tmp');
  await mkdir(tmpParent, { recursive: true });
  const tmpDir = await mkdtemp(join(tmpParent, 'run-'));
  // Interrupted runs must not leave a gigabyte behind.
  const onSignal = (signal: NodeJS.Signals) => {
    rmSync(tmpDir, { recursive: true, force: true });
    process.stderr.write(`\nInterrupted (${signal}); removed ${tmpDir}\n`);
    process.exit(130);
  };
  process.once('SIGINT', onSignal);
  process.once('SIGTERM', onSignal);

  const environment = {
    node: process.version,
    platform: `${platform()} ${release()} ${arch()}`,
    cpu: `${cpus()[0]?.model ?? 'unknown'} × ${cpus().length}`,
    memory: formatBytes(totalmem()),
    scratch: tmpParent,
    loadAverage: loadavg().map((l) => Math.round(l * 100) / 100),
    gcExposed: typeof (globalThis as { gc?: unknown }).gc === 'function',
  };
  if (!json) {
    process.stdout.write(
      `Stackline benchmarks${quick ? ' (quick)' : ''} — node ${environment.node}, ${environment.platform}, ` +
        `${environment.cpu}, ${environment.memory} RAM, load average ${environment.loadAverage.join(' ')}\n` +
        `scratch files in ${environment.scratch}\n`,
    );
    if (!environment.gcExposed)
      process.stdout.write('warning: run with --expose-gc (npm run bench does) for steadier numbers\n');
  }

  const started = performance.now();
  const results: BenchResult[] = [];
  const failures: Failure[] = [];
  try {
    for (const benchmark of selected) {
      log(`${benchmark.name}: starting`);
      const t0 = performance.now();
      try {
        const out = await benchmark.run({ quick, tmpDir, log });
        const result: BenchResult = {
          name: benchmark.name,
          description: benchmark.description,
          ...out,
          durationMs: performance.now() - t0,
        };
        results.push(result);
        if (!json) process.stdout.write(`\n${formatResult(result)}\n`);
      } catch (error) {
        const message = error instanceof Error ? (error.stack ?? error.message) : String(error);
        failures.push({ name: benchmark.name, error: message });
        if (!json) process.stdout.write(`\n== ${benchmark.name} — FAILED TO RUN\n${message}\n`);
      }
    }
  } finally {
    await rm(tmpDir, { recursive: true, force: true });
    process.off('SIGINT', onSignal);
    process.off('SIGTERM', onSignal);
  }
  const durationMs = performance.now() - started;

  const misses = results.flatMap((r) =>
    r.metrics
      .filter((m) => m.ok === false)
      .map((m) => ({ benchmark: r.name, label: m.label, value: m.value, unit: m.unit, target: m.target })),
  );
  const checked = results.reduce((n, r) => n + r.metrics.filter((m) => m.ok !== undefined).length, 0);

  if (json) {
    const report = { startedAt: new Date(Date.now() - durationMs).toISOString(), durationMs, quick, environment };
    process.stdout.write(`${JSON.stringify({ ...report, results, misses, failures }, null, 2)}\n`);
  } else {
    process.stdout.write(`\n== Summary (${formatNumber(durationMs / 1000)} s)\n`);
    if (misses.length === 0) process.stdout.write(`All ${checked} targets met ✓\n`);
    else {
      process.stdout.write(`✗ ${misses.length} of ${checked} targets MISSED:\n`);
      for (const m of misses) {
        process.stdout.write(
          `  ✗ [${m.benchmark}] ${m.label}: ${formatNumber(m.value)} ${m.unit} (target ${formatTarget(m.target, m.unit)})\n`,
        );
      }
    }
    for (const f of failures) process.stdout.write(`  ! [${f.name}] failed to run (see above)\n`);
  }
  return failures.length > 0 ? 1 : 0;
}

process.exitCode = await main();
