import { hostname } from 'node:os';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { currentExecutor, executorLoss, leaseUntil, startHeartbeat } from '../../../lib/runtime/liveness.ts';
import { reapAbandonedRuns } from '../../../lib/runtime/reaper.ts';
import { runDraft, stepDraft } from '../../conformance/metadata-store.conformance.ts';
import { createLocalTestEnv, type LocalTestEnv } from '../../support/local-env.ts';

let env: LocalTestEnv;
beforeEach(async () => {
  env = await createLocalTestEnv();
});
afterEach(async () => {
  await env.cleanup();
});

const remote = { kind: 'process' as const, host: 'another-host', pid: 1, processStartedAt: '2026-01-01T00:00:00.000Z' };

describe('the reaper', () => {
  it('reaps a remote run whose lease expired, with its running step run, and leaves live ones alone', async () => {
    const expired = await env.metadata.runs.create(
      runDraft({ executor: remote, leaseExpiresAt: leaseUntil(-1000), startedAt: '2026-01-01T00:00:01.000Z' }),
    );
    const step = await env.metadata.runs.startStep(stepDraft(expired.id));
    const live = await env.metadata.runs.create(runDraft({ executor: remote, leaseExpiresAt: leaseUntil(60_000) }));
    const mine = await env.metadata.runs.create(
      runDraft({ executor: currentExecutor(), leaseExpiresAt: leaseUntil(-1) }),
    );
    const legacy = await env.metadata.runs.create(runDraft());

    const reaped = await reapAbandonedRuns(env.metadata);

    expect(reaped).toEqual([expect.objectContaining({ runId: expired.id, reason: 'lease-expired' })]);
    expect(await env.metadata.runs.get(expired.id)).toMatchObject({
      status: 'failed',
      error: { type: 'ExecutorLost' },
    });
    expect((await env.metadata.runs.getStep(step.id)).status).toBe('failed');
    for (const run of [live, mine, legacy]) expect((await env.metadata.runs.get(run.id)).status).toBe('running');
  });

  it('recognises a dead pid on this host at once, and a reused pid by its start time', () => {
    const me = currentExecutor();
    expect(executorLoss({ executor: me, leaseExpiresAt: leaseUntil(-1) })).toBeUndefined();
    expect(executorLoss({ executor: { ...me, pid: 2 ** 22 + 7 } })?.reason).toBe('process-gone');
    if (me.processStart !== undefined) {
      expect(executorLoss({ executor: { ...me, processStart: '1' } })?.reason).toBe('process-gone');
    }
    expect(me.host).toBe(hostname());
  });

  it('asks the execution for Step Functions runs and reaps those whose execution ended', async () => {
    const ended = await env.metadata.runs.create(runDraft({ config: { executionArn: 'arn:ended' } }));
    const running = await env.metadata.runs.create(runDraft({ config: { executionArn: 'arn:running' } }));

    const reaped = await reapAbandonedRuns(env.metadata, {
      executionStatus: async (arn) => (arn === 'arn:ended' ? 'TIMED_OUT' : 'RUNNING'),
    });

    expect(reaped.map((r) => r.runId)).toEqual([ended.id]);
    expect((await env.metadata.runs.get(running.id)).status).toBe('running');
  });
});

describe('the heartbeat', () => {
  it('renews the lease of the run and its running step runs, and reports a run ended elsewhere', async () => {
    const run = await env.metadata.runs.create(runDraft({ leaseExpiresAt: leaseUntil(0) }));
    const step = await env.metadata.runs.startStep(stepDraft(run.id, { leaseExpiresAt: leaseUntil(0) }));
    let ended = false;
    const beat = startHeartbeat(env.metadata, run.id, () => [step.id], {
      intervalMs: 10,
      leaseMs: 60_000,
      onRunEnded: () => {
        ended = true;
      },
    });
    await new Promise((r) => setTimeout(r, 60));
    expect(Date.parse((await env.metadata.runs.get(run.id)).leaseExpiresAt!)).toBeGreaterThan(Date.now() + 50_000);
    expect(Date.parse((await env.metadata.runs.getStep(step.id)).leaseExpiresAt!)).toBeGreaterThan(Date.now() + 50_000);

    await env.metadata.runs.finish(run.id, 'cancelled', new Date().toISOString());
    await new Promise((r) => setTimeout(r, 60));
    beat.stop();
    expect(ended).toBe(true);
  });
});
