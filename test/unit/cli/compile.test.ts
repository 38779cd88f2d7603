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

describe('stackline compile: ECS steps', () => {
  const ECS_PIPELINE = 'test/fixtures/pipelines/ecs.ts';
  const SETTINGS = [
    '--ecs-cluster-arn',
    'arn:aws:ecs:eu-west-1:123456789012:cluster/stackline-dev',
    '--ecs-task-definition-arn',
    'arn:aws:ecs:eu-west-1:123456789012:task-definition/stackline-dev-step-runner:4',
    '--ecs-container-name',
    'step-runner',
    '--ecs-subnets',
    'subnet-0aaa1111,subnet-0bbb2222',
    '--ecs-security-groups',
    'sg-0ccc3333',
  ];
  const register = (...extra: string[]) =>
    runCli(
      home,
      'stack',
      'register',
      'dev',
      '--orchestrator',
      'step-functions',
      '--step-runner',
      'lambda',
      '--function-name',
      'stackline-dev-step-runner',
      '--artifact-store',
      's3',
      '--bucket',
      'acme-ml-dev',
      '--metadata-store',
      'dynamodb',
      '--table-prefix',
      'stackline-dev',
      '--region',
      'eu-west-1',
      ...extra,
    );

  it('compiles ECS steps against the ECS settings of the stack given with --stack', async () => {
    expect((await register(...SETTINGS)).code).toBe(0);
    const result = await runCli(home, 'compile', ECS_PIPELINE, '--lambda-arn', ARN, '--stack', 'dev');
    expect(result.code).toBe(0);
    const task = result.json().States.Step_train_on_ecs;
    expect(task.Resource).toBe('arn:aws:states:::ecs:runTask.waitForTaskToken');
    expect(task.Parameters).toMatchObject({
      Cluster: 'arn:aws:ecs:eu-west-1:123456789012:cluster/stackline-dev',
      TaskDefinition: 'arn:aws:ecs:eu-west-1:123456789012:task-definition/stackline-dev-step-runner:4',
      NetworkConfiguration: {
        AwsvpcConfiguration: { Subnets: ['subnet-0aaa1111', 'subnet-0bbb2222'], SecurityGroups: ['sg-0ccc3333'] },
      },
      Overrides: { ContainerOverrides: [{ Name: 'step-runner' }] },
    });
  });

  it('exits 2 naming each missing ECS setting and where it comes from when the stack has none', async () => {
    expect((await register()).code).toBe(0);
    const result = await runCli(home, 'compile', ECS_PIPELINE, '--stack', 'dev');
    expect(result.code).toBe(2);
    expect(result.stdout).toBe('');
    expect(result.stderr).toMatch(
      /step "train_on_ecs" runs on ECS, but stack "dev" has no ECS settings \(orchestrator\.ecs\)/,
    );
    for (const [setting, output, flag] of [
      ['clusterArn', 'EcsRunnerClusterArn', '--ecs-cluster-arn'],
      ['taskDefinitionArn', 'EcsRunnerTaskDefinitionArn', '--ecs-task-definition-arn'],
      ['containerName', 'EcsRunnerContainerName', '--ecs-container-name'],
      ['subnets', 'EcsRunnerSubnets', '--ecs-subnets'],
    ])
      expect(result.stderr).toContain(`${setting} (runner stack output ${output}; stack register ${flag})`);
  });

  it('exits 2 saying no stack was given when an ECS pipeline is compiled without --stack', async () => {
    const result = await runCli(home, 'compile', ECS_PIPELINE);
    expect(result.code).toBe(2);
    expect(result.stderr).toMatch(/no stack with ECS settings was given \(--stack NAME\)\. Missing: clusterArn/);
  });

  it('refuses to register incomplete ECS settings, naming the missing flag', async () => {
    const result = await register(...SETTINGS.slice(0, 4));
    expect(result.code).toBe(2);
    expect(result.stderr).toMatch(/ECS settings need --ecs-container-name/);
    expect(result.stderr).toMatch(/ECS settings need --ecs-subnets/);
  });
});
