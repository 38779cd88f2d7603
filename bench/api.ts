/**
 * The API: `stackline serve` latency for listing runs with 100,000 runs in the store (autocannon on
 * 127.0.0.1, bounded by request count and time), against a same-run baseline of a route that reads
 * almost nothing (`GET /stacks`); and the size of the API Lambda bundle.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { mkdir } from 'node:fs/promises';
import { createRequire } from 'node:module';
import { join } from 'node:path';
import { ApiTokenStore } from '../lib/api/tokens/token-store.ts';
import { bundleApiLambda } from '../lib/bundle/bundle-api-lambda.ts';
import { SqliteMetadataStore } from '../lib/metadata/sqlite/sqlite-metadata-store.ts';
import type { RunStatus } from '../lib/metadata/types.ts';
import { newId } from '../lib/util/ids.ts';
import { type Benchmark, metric } from './stats.ts';

// autocannon ships CommonJS without types.
const autocannon = createRequire(import.meta.url)('autocannon') as (options: Record<string, unknown>) => Promise<{
  latency: { p50: number; p99: number; average: number };
  non2xx: number;
  errors: number;
}>;

const KiB = 1024;
const STATUSES: RunStatus[] = ['completed', 'completed', 'completed', 'failed', 'cancelled'];

export async function seedRuns(home: string, count: number): Promise<void> {
  const store = SqliteMetadataStore.open(join(home, 'metadata.db'));
  try {
    const start = Date.UTC(2026, 0, 1);
    for (let i = 0; i < count; i++) {
      const startedAt = new Date(start + i * 60_000).toISOString();
      await store.runs.create({
        id: newId('run'),
        pipeline: `pipeline_${i % 20}`,
        status: STATUSES[i % STATUSES.length]!,
        stack: 'default',
        parameters: { i },
        config: {},
        tags: [`team:t${i % 7}`],
        metadata: {},
        createdBy: 'bench',
        startedAt,
        endedAt: startedAt,
      });
    }
  } finally {
    await store.close();
  }
}

export async function startServe(home: string): Promise<{ child: ChildProcess; url: string }> {
  const child = spawn(process.execPath, ['bin/stackline.js', 'serve', '--port', '0', '--json'], {
    env: { ...process.env, STACKLINE_HOME: home },
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  let out = '';
  const url = await new Promise<string>((resolve, reject) => {
    child.stdout!.on('data', (d) => {
      out += d;
      try {
        resolve(JSON.parse(out).url);
      } catch {
        // not the whole object yet
      }
    });
    child.once('exit', (code) => reject(new Error(`stackline serve exited with ${code}`)));
  });
  return { child, url };
}

export const apiBenchmark: Benchmark = {
  name: 'api',
  description: 'stackline serve latency listing runs with 100,000 runs (autocannon), and the API Lambda bundle size',
  async run({ quick, tmpDir, log }) {
    const runs = quick ? 10_000 : 100_000;
    const home = join(tmpDir, 'api-home');
    await mkdir(home, { recursive: true });
    log(`api: seeding ${runs.toLocaleString('en')} runs`);
    await seedRuns(home, runs);
    const tokens = ApiTokenStore.open(join(home, 'tokens.db'));
    const { token } = tokens.create({ role: 'member', name: 'bench' });
    tokens.close();

    const { child, url } = await startServe(home);
    const load = async (path: string) => {
      const result = await autocannon({
        url: `${url}${path}`,
        headers: { authorization: `Bearer ${token}` },
        connections: 4,
        amount: quick ? 1000 : 5000,
        duration: 20,
      });
      if (result.non2xx > 0 || result.errors > 0)
        throw new Error(`${path}: ${result.non2xx} non-2xx, ${result.errors} errors`);
      return result;
    };
    try {
      log('api: warm-up');
      await load('/runs?limit=50');
      log('api: measuring');
      const baseline = await load('/stacks');
      const list = await load('/runs?limit=50');
      const filtered = await load('/runs?status=failed&pipeline=pipeline_3&limit=50');
      const bundle = await bundleApiLambda(join(tmpDir, 'api-bundle', 'index.mjs'));
      const note = `${runs.toLocaleString('en')} runs in SQLite; autocannon, 4 connections, ${quick ? 1000 : 5000} requests per route on 127.0.0.1`;
      return {
        metrics: [
          metric('GET /runs?limit=50 p50', list.latency.p50, 'ms'),
          metric('GET /runs?limit=50 p99', list.latency.p99, 'ms', { op: '<', value: 20 }, note),
          metric('GET /runs?status&pipeline&limit=50 p99', filtered.latency.p99, 'ms', { op: '<', value: 20 }),
          metric('baseline GET /stacks p50', baseline.latency.p50, 'ms'),
          metric('baseline GET /stacks p99', baseline.latency.p99, 'ms'),
          metric(
            // autocannon's percentiles are whole milliseconds: the ratio uses the means.
            'GET /runs mean ÷ baseline mean',
            Math.round((list.latency.average / Math.max(baseline.latency.average, 0.001)) * 100) / 100,
            '×',
          ),
          metric(
            'GET /runs p99 ÷ baseline p99',
            Math.round((list.latency.p99 / Math.max(baseline.latency.p99, 1)) * 100) / 100,
            '×',
          ),
          metric(
            'API Lambda bundle, minified (AWS SDK from the runtime)',
            Math.round((bundle.bytes / KiB) * 10) / 10,
            'KiB',
            {
              op: '<',
              value: 500,
            },
          ),
        ],
      };
    } finally {
      const exited = new Promise((resolve) => child.once('exit', resolve));
      child.kill('SIGTERM');
      await exited;
    }
  },
};
