/**
 * The dashboard in headless Chromium: time to first render of the runs page with 10,000 runs in
 * the store, and of a run page drawing a 1,000-step DAG (laid out by dagre), each against the same
 * run's baseline of rendering an empty page in the same browser. "First render": from navigation
 * until the page shows its data (the first rows of runs; every node of the DAG, laid out in a
 * worker), and until the DAG's final layout (with cache verdicts) is drawn.
 */
import { mkdir } from 'node:fs/promises';
import { join } from 'node:path';
import type { Page } from 'playwright-core';
import { crossings, type LayoutInput, layOut } from '../dashboard/src/layout.ts';
import { builtDashboardDirectory } from '../lib/api/static-dashboard.ts';
import { ApiTokenStore } from '../lib/api/tokens/token-store.ts';
import { SqliteMetadataStore } from '../lib/metadata/sqlite/sqlite-metadata-store.ts';
import { newId } from '../lib/util/ids.ts';
import { launchChromium } from '../test/browser/chromium.ts';
import { seedRuns, startServe } from './api.ts';
import { type Benchmark, metric } from './stats.ts';

const DAG_WIDTH = 25;
const id = (i: number) => `step_${String(i).padStart(4, '0')}`;
/** A layered DAG: `DAG_WIDTH` steps per layer, each reading two steps of the layer above. */
const upstream = (i: number) => {
  if (i < DAG_WIDTH) return [];
  const layerStart = (Math.floor(i / DAG_WIDTH) - 1) * DAG_WIDTH;
  return [...new Set([layerStart + (i % DAG_WIDTH), layerStart + ((i + 1) % DAG_WIDTH)])].map(id);
};

/**
 * Edge crossings in the bench DAG as the dashboard lays it out (dagre's first order of each layer)
 * and with dagre's crossing minimisation: what the faster layout costs in looks.
 */
function dagCrossings(steps: number): { initial: number; minimised: number } {
  const input: LayoutInput = {
    direction: 'TB',
    nodes: Array.from({ length: steps }, (_, i) => ({ id: id(i), height: 67 })),
    edges: Array.from({ length: steps }, (_, i) => upstream(i).map((u) => ({ from: u, to: id(i) }))).flat(),
  };
  return {
    initial: crossings(layOut(input), input),
    minimised: crossings(layOut(input, true), input),
  };
}

async function seedDagRun(home: string, steps: number): Promise<string> {
  const store = SqliteMetadataStore.open(join(home, 'metadata.db'));
  try {
    const runId = newId('run');
    const at = new Date().toISOString();
    await store.runs.create({
      id: runId,
      pipeline: 'big_dag',
      status: 'running',
      stack: 'default',
      parameters: {},
      config: {
        steps: Object.fromEntries(
          Array.from({ length: steps }, (_, i) => [id(i), { step: id(i), upstream: upstream(i), options: {} }]),
        ),
      },
      tags: ['bench:dag'],
      metadata: {},
      createdBy: 'bench',
      startedAt: at,
    });
    for (let i = 0; i < steps; i++) {
      const stepRun = await store.runs.startStep({
        id: newId('srun'),
        runId,
        stepId: id(i),
        stepName: id(i),
        status: 'running',
        cacheKey: `ck-${i}`,
        codeHash: 'h',
        parameters: { i },
        startedAt: at,
        attempts: 1,
        inputs: {},
        outputs: {},
        metadata: {},
      });
      await store.runs.completeStep(stepRun.id, { endedAt: at, durationMs: i, attempts: 1, outputs: [] });
    }
    await store.runs.finish(runId, 'completed', new Date().toISOString());
    return runId;
  } finally {
    await store.close();
  }
}

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;

/** Milliseconds from navigating to `url` until `ready` (a page expression) holds, from a blank page. */
async function timeToRender(page: Page, url: string, ready: string, repeats: number): Promise<number> {
  const times: number[] = [];
  for (let i = 0; i < repeats; i++) {
    await page.goto('about:blank');
    const start = performance.now();
    await page.goto(url);
    await page.waitForFunction(ready, undefined, { timeout: 120_000, polling: 'raf' });
    times.push(performance.now() - start);
  }
  return median(times);
}

export const dashboardBenchmark: Benchmark = {
  name: 'dashboard',
  description: 'dashboard time to first render in headless Chromium: runs page (10,000 runs), 1,000-step DAG',
  async run({ quick, tmpDir, log }) {
    if (!builtDashboardDirectory()) throw new Error('the dashboard is not built: run `npm run build` first');
    const runs = quick ? 2_000 : 10_000;
    const steps = quick ? 200 : 1_000;
    const repeats = quick ? 2 : 5;
    const home = join(tmpDir, 'dashboard-home');
    await mkdir(home, { recursive: true });
    log(`dashboard: seeding ${runs.toLocaleString('en')} runs and a ${steps}-step DAG`);
    await seedRuns(home, runs - 1);
    const dagRunId = await seedDagRun(home, steps);
    const tokens = ApiTokenStore.open(join(home, 'tokens.db'));
    const { token } = tokens.create({ role: 'member', name: 'bench' });
    tokens.close();

    const { child, url } = await startServe(home);
    const browser = await launchChromium();
    try {
      const page = await browser.newPage({ viewport: { width: 1400, height: 900 } });
      // The token goes into this tab's sessionStorage once; later loads of the origin find it there.
      await page.goto(`${url}/#token=${encodeURIComponent(token)}`);
      await page.waitForFunction("sessionStorage.getItem('stackline.token') !== null");
      log('dashboard: measuring');
      const empty = await timeToRender(
        page,
        'data:text/html,<!doctype html><html><body><p id=ready>empty</p></body></html>',
        "document.getElementById('ready') !== null",
        repeats,
      );
      const runsPage = await timeToRender(
        page,
        `${url}/#/runs`,
        "document.querySelectorAll('[data-testid=runs-table] tbody tr').length > 0",
        repeats,
      );
      const drawn = `document.querySelectorAll('[data-testid=dag] [data-node]').length === ${steps}`;
      const dagShell = await timeToRender(
        page,
        `${url}/#/runs/${dagRunId}`,
        "document.querySelector('h1 code') !== null",
        repeats,
      );
      const dagPage = await timeToRender(page, `${url}/#/runs/${dagRunId}`, drawn, repeats);
      // Cache verdicts arrive after the run: they add a line to each box, so the graph is laid out
      // once more (in the worker); "final" is when that layout is drawn.
      const dagFinal = await timeToRender(
        page,
        `${url}/#/runs/${dagRunId}`,
        `${drawn} && document.querySelector('[data-testid=dag] svg[data-layout=current] [data-node] text:nth-of-type(3)') !== null`,
        repeats,
      );
      const crossed = dagCrossings(steps);
      const round = (x: number) => Math.round(x * 10) / 10;
      const note = `${runs.toLocaleString('en')} runs in SQLite, stackline serve on 127.0.0.1, Debian Chromium headless; median of ${repeats} loads from about:blank`;
      return {
        metrics: [
          metric('empty page (baseline)', round(empty), 'ms'),
          metric(`runs page, ${runs.toLocaleString('en')} runs in the store`, round(runsPage), 'ms', undefined, note),
          metric(`run page, ${steps}-step DAG: page shown, DAG being laid out`, round(dagShell), 'ms'),
          metric(`run page, ${steps}-step DAG: every node drawn`, round(dagPage), 'ms'),
          metric(`run page, ${steps}-step DAG: drawn with cache verdicts (final layout)`, round(dagFinal), 'ms'),
          metric('runs page ÷ empty page', round(runsPage / Math.max(empty, 0.1)), '×'),
          metric('DAG page (every node drawn) ÷ empty page', round(dagPage / Math.max(empty, 0.1)), '×'),
          metric('DAG page (final layout) ÷ empty page', round(dagFinal / Math.max(empty, 0.1)), '×'),
          metric(`edge crossings in the ${steps}-step DAG as drawn`, crossed.initial, 'crossings'),
          metric(`edge crossings with dagre's crossing minimisation`, crossed.minimised, 'crossings'),
        ],
      };
    } finally {
      await browser.close();
      const exited = new Promise((resolve) => child.once('exit', resolve));
      child.kill('SIGTERM');
      await exited;
    }
  },
};
