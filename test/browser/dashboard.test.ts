/**
 * The dashboard in a real headless Chromium (Debian's, driven by playwright-core), against the real
 * `stackline serve` binary after the reference scenario: every page, a member who cannot promote,
 * a release manager who can, and screenshots of each page for the README (docs/screenshots/).
 */
import type { ChildProcess } from 'node:child_process';
import { execFile } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import type { Browser, Page } from 'playwright-core';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { SqliteMetadataStore } from '../../lib/metadata/sqlite/sqlite-metadata-store.ts';
import { newId } from '../../lib/util/ids.ts';
import { runCli, startCli } from '../support/cli.ts';
import { launchChromium } from './chromium.ts';

const exec = promisify(execFile);
const MODEL = 'iris_classifier';
const SCREENSHOTS = join(process.cwd(), 'docs', 'screenshots');

let home: string;
let server: ChildProcess;
let url: string;
let browser: Browser;
const tokens = { member: '', releaseManager: '' };
/** Uncaught errors in any page: none are allowed (checked after each test). */
const pageErrors: string[] = [];
afterEach(() => {
  expect(pageErrors).toEqual([]);
});

/** Reads the platform API as a script would, to know what the pages must show. */
async function apiGet(path: string, token = tokens.member) {
  const res = await fetch(`${url}${path}`, { headers: { authorization: `Bearer ${token}` } });
  expect(res.status, `GET ${path}`).toBe(200);
  // biome-ignore lint/suspicious/noExplicitAny: tests index into response bodies freely
  return (await res.json()) as any;
}

async function startServe(): Promise<{ child: ChildProcess; url: string }> {
  const { child, exited } = startCli(home, ['serve', '--port', '0', '--json']);
  let out = '';
  const found = await new Promise<string>((resolve, reject) => {
    child.stdout!.on('data', (d) => {
      out += d;
      try {
        resolve(JSON.parse(out).url);
      } catch {
        // not the whole JSON object yet
      }
    });
    exited.then((e) => reject(new Error(`stackline serve exited ${e.code}: ${e.stderr}`)));
  });
  return { child, url: found };
}

/** A fresh browser context (its own sessionStorage) with the token handed over in the fragment. */
async function openAs(token: string, route: string): Promise<Page> {
  const context = await browser.newContext({ viewport: { width: 1400, height: 900 } });
  const page = await context.newPage();
  page.on('pageerror', (e) => pageErrors.push(e.message));
  await page.goto(`${url}/#token=${encodeURIComponent(token)}`);
  // Strings, not functions: they run in the page, whose globals the Node-side types do not know.
  await page.waitForFunction("!location.hash.includes('token=')");
  await page.evaluate(`location.hash = ${JSON.stringify(route)}`);
  return page;
}

beforeAll(async () => {
  home = await mkdtemp(join(tmpdir(), 'stackline-dashboard-'));
  await exec(process.execPath, ['--import', 'tsx', 'examples/reference/run.ts'], {
    env: { ...process.env, STACKLINE_HOME: home, NO_COLOR: '1' },
  });
  tokens.member = (await runCli(home, 'token', 'create', '--role', 'member', '--name', 'alice', '--json')).json().token;
  tokens.releaseManager = (
    await runCli(home, 'token', 'create', '--role', 'release-manager', '--name', 'rita', '--json')
  ).json().token;
  ({ child: server, url } = await startServe());
  browser = await launchChromium();
}, 180_000);

afterAll(async () => {
  await browser?.close();
  if (server && server.exitCode === null) {
    const exited = new Promise((resolve) => server.once('exit', resolve));
    server.kill('SIGTERM');
    await exited;
  }
  if (home) await rm(home, { recursive: true, force: true });
});

describe('the dashboard served by stackline serve', () => {
  it('serves the page at / without a token, and keeps the API behind one', async () => {
    const page = await fetch(`${url}/`);
    expect(page.status).toBe(200);
    expect(page.headers.get('content-type')).toMatch(/text\/html/);
    expect(await page.text()).toContain('<div id="root">');
    expect((await fetch(`${url}/runs`)).status).toBe(401);
  });

  it('takes the token from the fragment into sessionStorage and out of the address bar', async () => {
    const page = await openAs(tokens.member, '#/runs');
    expect(page.url()).not.toContain('token');
    expect(await page.evaluate("sessionStorage.getItem('stackline.token')")).toBe(tokens.member);
    await page.close();
  });

  it('lists runs with status, pipeline, trigger, duration and tags, and filters them', async () => {
    const runs = (await apiGet('/runs?limit=50')).items;
    const page = await openAs(tokens.member, '#/runs');
    const rows = page.locator('[data-testid="runs-table"] tbody tr');
    await expect.poll(() => rows.count()).toBe(runs.length);
    const training = runs.filter((r: { pipeline: string }) => r.pipeline === 'iris_training');
    const row = page.locator(`tr[data-run="${training[0].id}"]`);
    await expect.poll(() => row.textContent()).toContain('completed');
    const text = await row.textContent();
    expect(text).toContain('iris_training');
    expect(text).toContain(training[0].createdBy);
    expect(text).toMatch(/\d+(\.\d)? (ms|s)/);
    expect(text).toContain('experiment:forest-25');
    await page.screenshot({ path: join(SCREENSHOTS, 'runs.png'), fullPage: true });

    await page.selectOption('select[name="pipeline"]', 'iris_training');
    await expect.poll(() => rows.count()).toBe(training.length);
    await page.close();
  });

  it("shows the training run's DAG with every step and its status, and why a cached step hit", async () => {
    const run = (await apiGet('/runs?pipeline=iris_training&limit=1')).items[0];
    const { steps } = await apiGet(`/runs/${run.id}`);
    const page = await openAs(tokens.member, `#/runs/${run.id}`);
    for (const step of steps) {
      const node = page.locator(`[data-testid="dag"] [data-node="${step.stepId}"]`);
      await expect.poll(() => node.textContent()).toContain(step.status);
      expect(await node.getAttribute('class')).toContain(`status-${step.status}`);
    }
    expect(await page.locator('[data-testid="dag"] [data-node]').count()).toBe(steps.length);
    expect(await page.locator('[data-testid="dag"] path.edge').count()).toBeGreaterThan(0);

    const cached = steps.find((s: { status: string }) => s.status === 'cached');
    expect(cached, 'the second training run reuses a step').toBeDefined();
    const source = await apiGet(`/runs/${run.id}/explain`);
    const why = source.items.find((e: { stepRunId: string }) => e.stepRunId === cached.id);
    const node = page.locator(`[data-node="${cached.stepId}"]`);
    expect(await node.textContent()).toContain('cache hit');
    await node.click();
    const reason = page.locator('[data-testid="cache-reason"]');
    await expect.poll(() => reason.textContent()).toBe(why.summary);
    expect(why.summary).toMatch(/^hit: same key as run run_/);
    await page.screenshot({ path: join(SCREENSHOTS, 'run.png'), fullPage: true });
    await page.close();
  });

  it('shows the predictions lineage back to the training data, with a preview and a download link', async () => {
    const page = await openAs(tokens.member, '#/artifacts/iris_predictions/1');
    const lineage = page.locator('[data-testid="lineage"]');
    // predictions ← predict ← model iris_classifier v2 ← iris_model@v2 ← train_forest ← the training features.
    for (const title of [
      'iris_predictions@v1',
      'step predict',
      `model ${MODEL} v2`,
      'iris_model@v2',
      'step train_forest',
      'iris_train_features@v1',
      'split.train@v1',
      'load_iris.dataset@v1',
    ]) {
      await expect.poll(() => lineage.textContent(), { message: title }).toContain(title);
    }
    const preview = page.locator('pre.preview');
    await expect.poll(() => preview.textContent()).toContain('"predicted"');
    const href = await page.locator('[data-testid="download"]').getAttribute('href');
    const { size } = await apiGet('/artifacts/iris_predictions/versions/1');
    const bytes = await (await fetch(href!)).arrayBuffer();
    expect(bytes.byteLength).toBe(size);
    await page.screenshot({ path: join(SCREENSHOTS, 'artifacts.png'), fullPage: true });
    await page.close();
  });

  it('shows v2 in production with its stage history, and a member cannot promote', async () => {
    const history = (await apiGet(`/models/${MODEL}/history?limit=1000`)).items;
    const page = await openAs(tokens.member, `#/models/${MODEL}`);
    await expect.poll(() => page.locator('[data-testid="production-holder"]').textContent()).toBe('v2');
    const v2 = page.locator('[data-testid="versions"] tr[data-version="2"]');
    expect(await v2.textContent()).toContain('production');
    const rows = page.locator('[data-testid="history"] tbody tr');
    await expect.poll(() => rows.count()).toBe(history.length);
    const newest = await rows.first().textContent();
    expect(newest).toContain(history.at(-1).actor);
    expect(newest).toContain('production');
    expect(newest).toContain(history.at(-1).reason);

    const promote = page.locator('[data-testid="promote-1"]');
    expect(await promote.isDisabled()).toBe(true);
    expect(await page.locator('[data-testid="caller"]').textContent()).toContain('alice (member)');
    const direct = await fetch(`${url}/models/${MODEL}/versions/1/production`, {
      method: 'POST',
      headers: { authorization: `Bearer ${tokens.member}`, 'content-type': 'application/json' },
      body: JSON.stringify({ expectedHolder: 2 }),
    });
    expect(direct.status).toBe(403);
    expect((await apiGet(`/models/${MODEL}`)).stages.production).toBe(2);

    await page.check('input[aria-label="compare v1"]');
    await page.check('input[aria-label="compare v2"]');
    const comparison = page.locator('[data-testid="comparison"]');
    await expect.poll(() => comparison.textContent()).toContain('macroF1');
    expect(await comparison.locator('.recharts-bar-rectangle').count()).toBeGreaterThan(0);
    await page.screenshot({ path: join(SCREENSHOTS, 'models.png'), fullPage: true });
    await page.close();
  });

  it('lets a release manager promote, and the page shows the new holder without a reload', async () => {
    const page = await openAs(tokens.releaseManager, `#/models/${MODEL}`);
    const holder = page.locator('[data-testid="production-holder"]');
    await expect.poll(() => holder.textContent()).toBe('v2');
    const promote = page.locator('[data-testid="promote-1"]');
    await expect.poll(() => promote.isEnabled()).toBe(true);
    const navigations: string[] = [];
    page.on('framenavigated', (f) => navigations.push(f.url()));
    await promote.click();
    await expect.poll(() => holder.textContent()).toBe('v1');
    expect(navigations).toEqual([]);
    const history = page.locator('[data-testid="history"] tbody tr');
    await expect.poll(() => history.first().textContent()).toContain('rita');
    expect(await page.locator('[data-testid="versions"] tr[data-version="2"]').textContent()).toContain('archived');
    const model = await apiGet(`/models/${MODEL}`);
    expect(model.stages.production).toBe(1);
    const last = (await apiGet(`/models/${MODEL}/history?limit=1000`)).items.at(-1);
    expect(last).toMatchObject({ actor: 'rita', toStage: 'production', versionNumber: 1 });
    await page.close();
  });
});

describe('live updates', () => {
  it('re-reads the runs list while a run is in progress, and shows it finish without a reload', async () => {
    const store = SqliteMetadataStore.open(join(home, 'metadata.db'));
    try {
      const run = await store.runs.create({
        id: newId('run'),
        pipeline: 'live_pipeline',
        status: 'running',
        stack: 'default',
        parameters: {},
        config: {},
        tags: [],
        metadata: {},
        createdBy: 'bob',
        startedAt: new Date().toISOString(),
      });
      const page = await openAs(tokens.member, '#/runs');
      const row = page.locator(`tr[data-run="${run.id}"]`);
      await expect.poll(() => row.textContent()).toContain('running');
      expect(await page.locator('.live').count()).toBe(1);
      const navigations: string[] = [];
      page.on('framenavigated', (f) => navigations.push(f.url()));
      await store.runs.finish(run.id, 'completed', new Date().toISOString());
      await expect.poll(() => row.textContent(), { timeout: 10_000 }).toContain('completed');
      expect(navigations).toEqual([]);
      await page.close();
    } finally {
      await store.close();
    }
  });
});

describe('stackline dashboard', () => {
  it('prints a URL whose session token opens the dashboard, and revokes the token when it stops', async () => {
    const { child, exited } = startCli(home, ['dashboard', '--json', '--no-open']);
    let out = '';
    const opened = await new Promise<string>((resolve, reject) => {
      child.stdout!.on('data', (d) => {
        out += d;
        try {
          resolve(JSON.parse(out).url);
        } catch {
          // not yet the whole line
        }
      });
      exited.then((e) => reject(new Error(`stackline dashboard exited ${e.code}: ${e.stderr}`)));
    });
    expect(opened).toMatch(/^http:\/\/127\.0\.0\.1:\d+\/#token=/);
    const token = decodeURIComponent(opened.split('#token=')[1]!);
    const context = await browser.newContext();
    const page = await context.newPage();
    await page.goto(opened);
    await expect.poll(() => page.locator('[data-testid="runs-table"] tbody tr').count()).toBeGreaterThan(0);
    expect(page.url()).not.toContain('token=');
    await context.close();
    const base = opened.split('#')[0]!;
    const whoami = await fetch(`${base}whoami`, { headers: { authorization: `Bearer ${token}` } });
    expect(((await whoami.json()) as { role: string }).role).toBe('member');

    child.kill('SIGTERM');
    expect((await exited).code).toBe(0);
    const list = (await runCli(home, 'token', 'list', '--json')).json().tokens;
    const session = list.find((t: { name: string }) => t.name.includes('@dashboard-'));
    expect(session.revokedAt).toBeDefined();
  });

  it('refuses a bad --api URL with exit 2 and says what to pass', async () => {
    const result = await runCli(home, 'dashboard', '--api', 'not a url', '--no-open');
    expect(result.code).toBe(2);
    expect(result.stderr).toMatch(/--api "not a url" is not a URL: give the API's URL with its stage/);
  });
});
