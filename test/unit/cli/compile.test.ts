import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { runCli } from '../../support/cli.ts';

const SIMPLE = 'test/fixtures/pipelines/simple.ts';
const MULTI = 'test/fixtures/pipelines/multi.ts';
const ARN = 'arn:aws:lambda:eu-central-1:210987654321:function:runner';

let home: string;
beforeEach(async () => {
  home = await mkdtemp(join(tmpdir(), 'stackline-compile-'));
});
afterEach(async () => {
  vi.unstubAllEnvs();
  await rm(home, { recursive: true, force: true });
});

describe('stackline compile', () => {
  it('prints the state machine definition on stdout', async () => {
    const result = await runCli(home, 'compile', SIMPLE, '--lambda-arn', ARN);
    expect(result.code).toBe(0);
    const definition = result.json();
    expect(definition.StartAt).toBe('HasTags');
    expect(definition.States.Step_numbers).toMatchObject({
      Parameters: { FunctionName: ARN, Payload: { action: 'run-step', pipeline: 'simple', stepId: 'numbers' } },
      Next: 'Step_stats',
    });
    expect(result.stderr).toBe('');
  });

  it('uses a placeholder step runner ARN in AWS_REGION without --lambda-arn, and says so', async () => {
    vi.stubEnv('AWS_REGION', 'ap-southeast-2');
    const result = await runCli(home, 'compile', SIMPLE);
    expect(result.code).toBe(0);
    expect(result.json().States.Step_numbers.Parameters.FunctionName).toBe(
      'arn:aws:lambda:ap-southeast-2:123456789012:function:stackline-step-runner',
    );
    expect(result.stderr).toMatch(/placeholder .*pass --lambda-arn/);
  });

  it('writes the definition to --out and reports its size and state count on stderr', async () => {
    const out = join(home, 'asl', 'simple.json');
    const result = await runCli(home, 'compile', SIMPLE, '--lambda-arn', ARN, '--out', out);
    expect(result.code).toBe(0);
    expect(result.stdout).toBe('');
    const written = await readFile(out, 'utf8');
    expect(JSON.parse(written).States).toHaveProperty('Step_stats');
    const bytes = Buffer.byteLength(written) - 1; // the file ends with a newline
    expect(result.stderr).toMatch(
      new RegExp(`^Wrote .*simple\\.json: pipeline "simple", 14 states, ${(bytes / 1024).toFixed(1)} KiB`),
    );
  });

  it('prints a JSON summary with --json', async () => {
    const out = join(home, 'simple.json');
    const result = await runCli(home, 'compile', SIMPLE, '--out', out, '--lambda-arn', ARN, '--json');
    expect(result.code).toBe(0);
    expect(result.json()).toEqual({
      pipeline: 'simple',
      stateCount: 14,
      sizeBytes: Buffer.byteLength(await readFile(out, 'utf8')) - 1,
      lambdaFunctionArn: ARN,
      placeholderArn: false,
      out,
    });
    expect(result.stderr).toBe('');
  });

  it('compiles the pipeline named by --pipeline when the file exports several', async () => {
    const ambiguous = await runCli(home, 'compile', MULTI);
    expect(ambiguous.code).toBe(2);
    expect(ambiguous.stderr).toMatch(/exports several pipelines \(first, second\): choose one with --pipeline NAME/);
    const chosen = await runCli(home, 'compile', MULTI, '--pipeline', 'second', '--lambda-arn', ARN);
    expect(chosen.code).toBe(0);
    expect(chosen.json().States.Step_one.Parameters.Payload.pipeline).toBe('second');
  });

  it('exits 2 with the reason when the file does not exist', async () => {
    const result = await runCli(home, 'compile', 'test/fixtures/pipelines/missing.ts', '--json');
    expect(result.code).toBe(2);
    expect(result.json().error).toMatchObject({ code: 'VALIDATION', message: expect.stringMatching(/not found/) });
  });
});
