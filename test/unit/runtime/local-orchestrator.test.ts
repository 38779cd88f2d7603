import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { z } from 'zod';
import { NonRetriableError, pipeline, step } from '../../../lib/index.ts';
import { runPipelineLocally } from '../../../lib/runtime/local-orchestrator.ts';
import { createLocalTestEnv, type LocalTestEnv } from '../../support/local-env.ts';

let env: LocalTestEnv;
beforeEach(async () => {
  env = await createLocalTestEnv();
});
afterEach(async () => {
  await env.cleanup();
});

const numbers = step(
  {
    name: 'numbers',
    parameters: z.object({ count: z.number().int().default(5) }),
    outputs: { values: z.array(z.number()) },
  },
  ({ params }) => ({ values: Array.from({ length: params.count }, (_, i) => i + 1) }),
);
const total = step(
  { name: 'total', inputs: { values: z.array(z.number()) }, outputs: { sum: z.number() } },
  ({ inputs }) => ({
    sum: inputs.values.reduce((a, b) => a + b, 0),
  }),
);

const sumPipeline = pipeline(
  { name: 'sum', parameters: z.object({ count: z.number().int().default(5) }) },
  ({ count }) => {
    const { values } = numbers({}, { params: { count } });
    total({ values });
  },
);

describe('running a pipeline locally', () => {
  it('runs steps in dependency order and records runs, step runs and artifact versions', async () => {
    const result = await runPipelineLocally(sumPipeline, env, { params: { count: 4 } });
    expect(result.run.status).toBe('completed');
    const sum = result.steps.find((s) => s.node.id === 'total')!.result!.outputs.sum!;
    expect(sum.name).toBe('total.sum');
    expect(sum.version).toBe(1);
    expect(await env.materializers.get(sum.materializer).load(sum, { store: env.artifacts })).toBe(10);
    const stepRuns = await env.metadata.runs.listSteps(result.run.id);
    expect(stepRuns.map((s) => [s.stepId, s.status])).toEqual([
      ['numbers', 'completed'],
      ['total', 'completed'],
    ]);
    expect(stepRuns[1]!.inputs.values).toBe(result.steps[0]!.result!.outputs.values!.id);
    const consumers = await env.metadata.artifacts.consumers(result.steps[0]!.result!.outputs.values!.id);
    expect(consumers.map((c) => c.stepId)).toEqual(['total']);
  });

  it('rejects invalid parameters before recording a run', async () => {
    await expect(runPipelineLocally(sumPipeline, env, { params: { count: 'x' } })).rejects.toThrow(/count: /);
    expect((await env.metadata.runs.list()).items).toHaveLength(0);
  });
});

describe('caching', () => {
  it('reuses every step on an identical second run and points at the original versions', async () => {
    const first = await runPipelineLocally(sumPipeline, env);
    const second = await runPipelineLocally(sumPipeline, env);
    expect(second.steps.map((s) => s.stepRun!.status)).toEqual(['cached', 'cached']);
    expect(second.steps[1]!.result!.outputs.sum!.id).toBe(first.steps[1]!.result!.outputs.sum!.id);
    expect(second.steps[1]!.stepRun!.cachedFrom).toBe(first.steps[1]!.stepRun!.id);
    expect((await env.metadata.artifacts.listVersions('total.sum')).items).toHaveLength(1);
  });

  it('misses when a parameter changes, and only for the steps it reaches', async () => {
    await runPipelineLocally(sumPipeline, env, { params: { count: 3 } });
    const changed = await runPipelineLocally(sumPipeline, env, { params: { count: 4 } });
    expect(changed.steps.map((s) => s.stepRun!.status)).toEqual(['completed', 'completed']);
    const back = await runPipelineLocally(sumPipeline, env, { params: { count: 3 } });
    expect(back.steps.map((s) => s.stepRun!.status)).toEqual(['cached', 'cached']);
  });

  it('hits downstream when an upstream re-run produced identical content', async () => {
    const flaky = (suffix: string) =>
      pipeline({ name: 'content' }, () => {
        const { values } = step(
          { name: 'numbers', outputs: { values: z.array(z.number()) }, codeVersion: suffix },
          () => ({ values: [1, 2, 3] }),
        )();
        total({ values });
      });
    await runPipelineLocally(flaky('a'), env);
    const second = await runPipelineLocally(flaky('b'), env);
    expect(second.steps.map((s) => s.stepRun!.status)).toEqual(['completed', 'cached']);
  });

  it('misses when the step function body changes', async () => {
    const withBody = (fn: () => { n: number }) =>
      pipeline({ name: 'code' }, () => {
        step({ name: 'constant', outputs: { n: z.number() } }, fn)();
      });
    await runPipelineLocally(
      withBody(() => ({ n: 1 })),
      env,
    );
    const same = await runPipelineLocally(
      withBody(() => ({ n: 1 })),
      env,
    );
    expect(same.steps[0]!.stepRun!.status).toBe('cached');
    const edited = await runPipelineLocally(
      withBody(() => ({ n: 1 + 0 })),
      env,
    );
    expect(edited.steps[0]!.stepRun!.status).toBe('completed');
  });

  it('is bypassed by cache: false on the run, and by a step option', async () => {
    await runPipelineLocally(sumPipeline, env);
    const noCache = await runPipelineLocally(sumPipeline, env, { cache: false });
    expect(noCache.steps.map((s) => s.stepRun!.status)).toEqual(['completed', 'completed']);
    const perStep = await runPipelineLocally(sumPipeline, env, { stepCache: { total: false } });
    expect(perStep.steps.map((s) => s.stepRun!.status)).toEqual(['cached', 'completed']);
  });
});

describe('failures, retries and timeouts', () => {
  it('retries a throwing step with backoff and then succeeds', async () => {
    let calls = 0;
    const flaky = step(
      { name: 'flaky', outputs: { ok: z.boolean() }, retries: { maxRetries: 2, backoffMs: 5 } },
      () => {
        calls++;
        if (calls < 3) throw new Error(`transient ${calls}`);
        return { ok: true };
      },
    );
    const events: string[] = [];
    const result = await runPipelineLocally(
      pipeline({ name: 'retry' }, () => void flaky()),
      env,
      {
        onEvent: (e) => {
          if (e.type === 'step-retrying') events.push(`${e.attempt}:${e.error.message}`);
        },
      },
    );
    expect(result.run.status).toBe('completed');
    expect(result.steps[0]!.stepRun!.attempts).toBe(3);
    expect(events).toEqual(['1:transient 1', '2:transient 2']);
  });

  it('fails the run after the retries are used up, recording the step error', async () => {
    const broken = step(
      { name: 'broken', outputs: { ok: z.boolean() }, retries: { maxRetries: 1, backoffMs: 1 } },
      () => {
        throw new Error('disk on fire');
      },
    );
    const result = await runPipelineLocally(
      pipeline({ name: 'fails' }, () => void broken()),
      env,
    );
    expect(result.run.status).toBe('failed');
    expect(result.run.error?.message).toContain('disk on fire');
    const [stepRun] = await env.metadata.runs.listSteps(result.run.id);
    expect(stepRun!.status).toBe('failed');
    expect(stepRun!.attempts).toBe(2);
    expect(stepRun!.error?.message).toBe('disk on fire');
  });

  it('does not retry a NonRetriableError', async () => {
    let calls = 0;
    const fatal = step({ name: 'fatal', outputs: { ok: z.boolean() }, retries: 3 }, () => {
      calls++;
      throw new NonRetriableError('bad input');
    });
    const result = await runPipelineLocally(
      pipeline({ name: 'fatal' }, () => void fatal()),
      env,
    );
    expect(result.run.status).toBe('failed');
    expect(calls).toBe(1);
  });

  it('times out a slow attempt', async () => {
    const slow = step({ name: 'slow', outputs: { ok: z.boolean() }, timeoutMs: 50 }, async ({ context }) => {
      await new Promise((resolve) => setTimeout(resolve, 5_000, undefined)).catch(() => {});
      return { ok: context.signal.aborted };
    });
    const started = Date.now();
    const result = await runPipelineLocally(
      pipeline({ name: 'slow' }, () => void slow()),
      env,
    );
    expect(result.run.status).toBe('failed');
    expect(result.run.error?.message).toMatch(/timed out after 50 ms/);
    expect(Date.now() - started).toBeLessThan(4_000);
  });

  it('fails a step whose output breaks its schema, naming step, output and path, and records no artifact', async () => {
    const liar = step(
      { name: 'liar', outputs: { good: z.number(), rows: z.array(z.object({ x: z.number() })) } },
      () => ({
        good: 1,
        rows: [{ x: 1 }, { x: 'two' as unknown as number }],
      }),
    );
    const result = await runPipelineLocally(
      pipeline({ name: 'schema' }, () => void liar()),
      env,
    );
    expect(result.run.status).toBe('failed');
    expect(result.run.error?.message).toContain('Step "liar" output "rows" does not match its schema: 1.x:');
    expect((await env.metadata.artifacts.list()).items).toEqual([]);
    const [stepRun] = await env.metadata.runs.listSteps(result.run.id);
    expect(stepRun!.status).toBe('failed');
    expect(stepRun!.outputs).toEqual({});
  });

  it('stops starting steps after the first failure (fail-fast) and skips its dependents', async () => {
    const started: string[] = [];
    const ok = step({ name: 'ok', outputs: { n: z.number() } }, () => {
      started.push('ok');
      return { n: 1 };
    });
    const boom = step({ name: 'boom', inputs: { n: z.number() }, outputs: { n: z.number() } }, () => {
      started.push('boom');
      throw new Error('boom');
    });
    const after = step({ name: 'after', inputs: { n: z.number() }, outputs: { n: z.number() } }, ({ inputs }) => {
      started.push('after');
      return { n: inputs.n };
    });
    const p = pipeline({ name: 'failfast' }, () => {
      const { n } = ok();
      after({ n: boom({ n }).n });
    });
    const result = await runPipelineLocally(p, env);
    expect(result.run.status).toBe('failed');
    expect(started).toEqual(['ok', 'boom']);
    expect(result.steps.find((s) => s.node.id === 'after')!.stepRun).toBeUndefined();
  });

  it('runs independent steps concurrently up to the limit', async () => {
    let running = 0;
    let peak = 0;
    const wait = step(
      { name: 'wait', parameters: z.object({ i: z.number() }), outputs: { i: z.number() } },
      async ({ params }) => {
        running++;
        peak = Math.max(peak, running);
        await new Promise((r) => setTimeout(r, 30));
        running--;
        return { i: params.i };
      },
    );
    const wide = pipeline({ name: 'wide' }, () => {
      for (let i = 0; i < 8; i++) wait({}, { id: `w${i}`, params: { i } });
    });
    await runPipelineLocally(wide, env, { concurrency: 3, cache: false });
    expect(peak).toBe(3);
  });

  it('ends the run cancelled, with no step left running, when aborted mid-step', async () => {
    const controller = new AbortController();
    const hang = step({ name: 'hang', outputs: { ok: z.boolean() } }, ({ context }) => {
      setTimeout(() => controller.abort(), 20);
      return new Promise((_, reject) => context.signal.addEventListener('abort', () => reject(new Error('aborted'))));
    });
    const result = await runPipelineLocally(
      pipeline({ name: 'abort' }, () => void hang()),
      env,
      { signal: controller.signal },
    );
    expect(result.run.status).toBe('cancelled');
    const steps = await env.metadata.runs.listSteps(result.run.id);
    expect(steps.map((s) => s.status)).toEqual(['cancelled']);
  });
});

describe('a run that keeps no step results', () => {
  it('still hands every step its inputs (outputs are dropped only once all readers started) and lists only the steps', async () => {
    const source = step({ name: 'source', outputs: { v: z.number() } }, () => ({ v: 2 }));
    const double = step({ name: 'double', inputs: { v: z.number() }, outputs: { v: z.number() } }, ({ inputs }) => ({
      v: inputs.v * 2,
    }));
    const add = step(
      { name: 'add', inputs: { a: z.number(), b: z.number() }, outputs: { v: z.number() } },
      ({ inputs }) => ({ v: inputs.a + inputs.b }),
    );
    // source feeds three readers (two of them through double), so its outputs outlive its first reader.
    const diamond = pipeline({ name: 'diamond_kept_none' }, () => {
      const { v } = source();
      const { v: left } = double({ v }, { id: 'left' });
      const { v: right } = double({ v }, { id: 'right' });
      const { v: both } = add({ a: left, b: right }, { id: 'both' });
      add({ a: both, b: v }, { id: 'total' });
    });
    const result = await runPipelineLocally(diamond, env, { keepResults: false, concurrency: 1 });
    expect(result.run.status).toBe('completed');
    expect(result.steps.map((s) => Object.keys(s))).toEqual([['node'], ['node'], ['node'], ['node'], ['node']]);
    const total = (await env.metadata.runs.latestSteps(result.run.id, ['total'])).get('total')!;
    const [version] = await env.metadata.artifacts.getVersionsByIds([total.outputs.v!]);
    expect(await env.artifacts.getBytes(version!.contentHash).then((b) => JSON.parse(b.toString()))).toBe(10);
  });
});

describe('a run whose steps never wait', () => {
  const first = step({ name: 'first', outputs: { n: z.number() } }, () => ({ n: 1 }));
  const next = step({ name: 'next', inputs: { n: z.number() }, outputs: { n: z.number() } }, ({ inputs }) => ({
    n: inputs.n + 1,
  }));
  const long = pipeline({ name: 'never_waits' }, () => {
    let { n } = first();
    for (let i = 1; i < 400; i++) ({ n } = next({ n }, { id: `next_${i}` }));
  });

  it("lets Node's event loop turn, so a timer (a heartbeat, Ctrl-C) is not held until the run ends", async () => {
    const stepsWhenTimerFired: number[] = [];
    let stepsDone = 0;
    const timer = setTimeout(() => stepsWhenTimerFired.push(stepsDone), 1);
    const result = await runPipelineLocally(long, env, {
      onEvent: (event) => {
        if (event.type === 'step-finished') stepsDone++;
      },
    });
    clearTimeout(timer);
    expect(result.run.status).toBe('completed');
    expect(stepsWhenTimerFired).toHaveLength(1);
    expect(stepsWhenTimerFired[0]).toBeLessThan(400);
  });

  it('is cancelled by an abort a timer fires mid-run', async () => {
    const controller = new AbortController();
    let stepsDone = 0;
    const result = await runPipelineLocally(long, env, {
      signal: controller.signal,
      onEvent: (event) => {
        if (event.type === 'step-finished' && ++stepsDone === 20)
          setTimeout(() => controller.abort(new Error('SIGINT')), 0);
      },
    });
    expect(result.run.status).toBe('cancelled');
    expect(stepsDone).toBeLessThan(400);
    const stepRuns = await env.metadata.runs.listSteps(result.run.id);
    expect(stepRuns.filter((s) => s.status === 'running')).toEqual([]);
  });

  it("is cancelled mid-fan-out by an abort a timer fires, though no item's step waits", async () => {
    const ids = step({ name: 'ids', outputs: { ids: z.array(z.number()) } }, () => ({
      ids: Array.from({ length: 2000 }, (_, i) => i),
    }));
    const square = step(
      { name: 'square', inputs: { id: z.number() }, outputs: { value: z.number() } },
      ({ inputs }) => ({
        value: inputs.id * inputs.id,
      }),
    );
    const wide = pipeline({ name: 'wide_never_waits' }, () => {
      square.map({ id: ids().ids }, { over: 'id' });
    });
    const controller = new AbortController();
    let items = 0;
    const result = await runPipelineLocally(wide, env, {
      signal: controller.signal,
      onEvent: (event) => {
        if (event.type === 'step-finished' && event.stepId.startsWith('square[') && ++items === 20)
          setTimeout(() => controller.abort(new Error('SIGINT')), 0);
      },
    });
    expect(result.run.status).toBe('cancelled');
    expect(items).toBeLessThan(2000);
  });
});
