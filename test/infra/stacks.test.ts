/**
 * Unit tests on the synthesized CloudFormation of `infra/`: one app with dev, staging and prod
 * (bundling a small fixture pipeline) is synthesized once, in beforeAll, and shared.
 */
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { App } from 'aws-cdk-lib';
import { Template } from 'aws-cdk-lib/assertions';
import * as s3 from 'aws-cdk-lib/aws-s3';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { resolveEnvironments } from '../../infra/environments.ts';
import { addStacklineStages, type StacklineStage } from '../../infra/stackline-app.ts';
import { compileToAsl } from '../../lib/compiler/compile-to-asl.ts';
import { tableDefinitions, tableNamesFor } from '../../lib/metadata/dynamodb/table-definitions.ts';
import { pipelineDefinitionHash } from '../../lib/orchestrators/deployed-pipelines.ts';
import { readStepRunnerEnvironment, StepRunnerEnvironment } from '../../lib/runtime/aws-step-runner-config.ts';
import {
  allowedFor,
  asArray,
  type Json,
  type Resource,
  render,
  type Statement,
  stateMachine,
} from '../support/cfn-template.ts';

const ACCOUNT = '123456789012';
const REGION = 'eu-west-1';
const PIPELINE = 'test/fixtures/pipelines/simple.ts';
const FAN_OUT = 'test/fixtures/pipelines/fan-out.ts';

interface Synthesized {
  stage: StacklineStage;
  data: Template;
  runner: Template;
}

let outdir: string;
const synthesized = {} as Record<'dev' | 'staging' | 'prod', Synthesized>;

beforeAll(async () => {
  outdir = await mkdtemp(join(tmpdir(), 'stackline-infra-'));
  // Findings go to the report, which a test below asserts on, instead of failing beforeAll.
  const app = new App({ outdir, context: { '@aws-cdk/core:failSynthOnValidationErrors': false } });
  const stages = await addStacklineStages(app, {
    environments: resolveEnvironments({
      overrides: {
        dev: { pipelines: [PIPELINE], promoters: ['iris_training'] },
        // staging covers the optional settings: a KMS key and a Distributed Map threshold.
        staging: { pipelines: [PIPELINE, FAN_OUT], encryption: 'kms', distributedMapThreshold: 40 },
        prod: { pipelines: [PIPELINE] },
      },
      defaultAccount: ACCOUNT,
      defaultRegion: REGION,
    }),
  });
  app.synth();
  for (const stage of stages) {
    synthesized[stage.environment.name] = {
      stage,
      data: Template.fromStack(stage.data),
      runner: Template.fromStack(stage.runner),
    };
  }
});

afterAll(async () => {
  if (outdir) await rm(outdir, { recursive: true, force: true });
});

function stepRunner(template: Template): [string, Resource] {
  const functions = Object.entries(template.findResources('AWS::Lambda::Function') as Record<string, Resource>).filter(
    ([, fn]) => String(fn.Properties!.FunctionName).endsWith('-step-runner'),
  );
  expect(functions).toHaveLength(1);
  return functions[0]!;
}

/** What CDK grants a state machine for CloudWatch Logs delivery and X-Ray (no resource-level permissions). */
const LOGS_AND_TRACING = [
  'logs:CreateLogDelivery',
  'logs:DeleteLogDelivery',
  'logs:DescribeLogGroups',
  'logs:DescribeResourcePolicies',
  'logs:GetLogDelivery',
  'logs:ListLogDeliveries',
  'logs:PutResourcePolicy',
  'logs:UpdateLogDelivery',
  'xray:GetSamplingRules',
  'xray:GetSamplingTargets',
  'xray:PutTelemetryRecords',
  'xray:PutTraceSegments',
];

const byName = <T extends { AttributeName?: string }>(items: T[] = []) =>
  [...items].sort((a, b) => String(a.AttributeName).localeCompare(String(b.AttributeName)));

describe('the data stack', () => {
  it('renders the five metadata tables exactly as tableDefinitions describes them', () => {
    const { data, stage } = synthesized.prod;
    const tables = Object.values(data.findResources('AWS::DynamoDB::Table') as Record<string, Resource>);
    expect(tables).toHaveLength(5);
    const rendered = Object.fromEntries(tables.map((table) => [table.Properties!.TableName, table.Properties!]));
    for (const definition of Object.values(tableDefinitions(tableNamesFor(stage.environment.tablePrefix)))) {
      const table = rendered[definition.TableName!];
      expect(table, definition.TableName).toBeDefined();
      expect(table!.BillingMode).toBe(definition.BillingMode);
      expect(table!.KeySchema).toEqual(definition.KeySchema);
      expect(byName(table!.AttributeDefinitions)).toEqual(byName(definition.AttributeDefinitions));
      expect(table!.GlobalSecondaryIndexes).toEqual(definition.GlobalSecondaryIndexes);
    }
  });

  it('turns point-in-time recovery on for every table', () => {
    const tables = Object.values(
      synthesized.dev.data.findResources('AWS::DynamoDB::Table') as Record<string, Resource>,
    );
    for (const table of tables) {
      expect(table.Properties!.PointInTimeRecoverySpecification).toEqual({ PointInTimeRecoveryEnabled: true });
    }
  });

  it('encrypts the bucket with S3-managed keys by default and blocks public access', () => {
    synthesized.dev.data.hasResourceProperties('AWS::S3::Bucket', {
      BucketName: `stackline-dev-artifacts-${ACCOUNT}-${REGION}`,
      BucketEncryption: {
        ServerSideEncryptionConfiguration: [{ ServerSideEncryptionByDefault: { SSEAlgorithm: 'AES256' } }],
      },
      PublicAccessBlockConfiguration: {
        BlockPublicAcls: true,
        BlockPublicPolicy: true,
        IgnorePublicAcls: true,
        RestrictPublicBuckets: true,
      },
    });
  });

  it('encrypts the bucket with its own rotating KMS key when the environment asks for it', () => {
    const { data } = synthesized.staging;
    data.hasResourceProperties('AWS::KMS::Key', { EnableKeyRotation: true });
    const [bucket] = Object.values(data.findResources('AWS::S3::Bucket') as Record<string, Resource>);
    const sse = bucket!.Properties!.BucketEncryption.ServerSideEncryptionConfiguration[0].ServerSideEncryptionByDefault;
    expect(sse.SSEAlgorithm).toBe('aws:kms');
    expect(sse.KMSMasterKeyID).toEqual({ 'Fn::GetAtt': [expect.stringMatching(/^ArtifactKey/), 'Arn'] });
  });

  it('keeps the bucket unversioned: blobs are content-addressed and immutable', () => {
    const [bucket] = Object.values(synthesized.prod.data.findResources('AWS::S3::Bucket') as Record<string, Resource>);
    expect(bucket!.Properties!.VersioningConfiguration).toBeUndefined();
  });

  it('denies every request to the bucket that does not use TLS', () => {
    const policies = Object.values(
      synthesized.dev.data.findResources('AWS::S3::BucketPolicy') as Record<string, Resource>,
    );
    const statements = policies.flatMap((policy) => policy.Properties!.PolicyDocument.Statement);
    expect(statements).toContainEqual(
      expect.objectContaining({
        Effect: 'Deny',
        Action: 's3:*',
        Condition: { Bool: { 'aws:SecureTransport': 'false' } },
      }),
    );
  });

  it('expires temporary upload objects under <prefix>/tmp/ after a day and aborts stale multipart uploads', () => {
    const [bucket] = Object.values(synthesized.dev.data.findResources('AWS::S3::Bucket') as Record<string, Resource>);
    const rules = bucket!.Properties!.LifecycleConfiguration.Rules;
    expect(rules).toContainEqual(
      expect.objectContaining({ Prefix: 'stackline/tmp/', ExpirationInDays: 1, Status: 'Enabled' }),
    );
    expect(rules).toContainEqual(
      expect.objectContaining({ AbortIncompleteMultipartUpload: { DaysAfterInitiation: 1 }, Status: 'Enabled' }),
    );
    // Nothing outside tmp/ expires: blobs stay until deleted on purpose.
    expect(rules.filter((rule: Json) => rule.ExpirationInDays !== undefined)).toHaveLength(1);
  });

  it('retains the tables and the bucket of prod when its stack is deleted', () => {
    const resources = synthesized.prod.data.toJSON().Resources as Record<string, Resource>;
    const stateful = Object.values(resources).filter((r) =>
      ['AWS::DynamoDB::Table', 'AWS::S3::Bucket'].includes(r.Type),
    );
    expect(stateful).toHaveLength(6); // five tables and the bucket
    for (const resource of stateful) expect(resource.DeletionPolicy).toBe('Retain');
  });

  it('deletes the tables and the bucket of dev with its stack', () => {
    const resources = synthesized.dev.data.toJSON().Resources as Record<string, Resource>;
    const stateful = Object.values(resources).filter((r) =>
      ['AWS::DynamoDB::Table', 'AWS::S3::Bucket'].includes(r.Type),
    );
    expect(stateful).toHaveLength(6); // five tables and the bucket
    for (const resource of stateful) expect(resource.DeletionPolicy).toBe('Delete');
  });
});

describe('the runner stack', () => {
  it('runs the bundle on Node.js 22 arm64 with handler index.handler', async () => {
    const [, fn] = stepRunner(synthesized.dev.runner);
    expect(fn.Properties).toMatchObject({
      FunctionName: 'stackline-dev-step-runner',
      Runtime: 'nodejs22.x',
      Architectures: ['arm64'],
      Handler: 'index.handler',
      MemorySize: 1024,
      Timeout: 300,
    });
    // The asset is the bundle: <outdir>/asset.<hash>/index.mjs, exporting the handler.
    const assetHash = String(fn.Properties!.Code.S3Key).replace(/\.zip$/, '');
    const bundle = await readFile(join(outdir, `asset.${assetHash}`, 'index.mjs'), 'utf8');
    expect(bundle).toMatch(/export\s*\{[^}]*\bhandler\b/);
  });

  it('sets the variables the step runner requires, and only ones it reads', () => {
    const required = Object.entries(StepRunnerEnvironment.shape)
      .filter(([, schema]) => !schema.safeParse(undefined).success)
      .map(([name]) => name)
      .filter((name) => name !== 'AWS_REGION'); // set by Lambda itself (reserved)
    for (const { runner } of Object.values(synthesized)) {
      const variables = stepRunner(runner)[1].Properties!.Environment.Variables as Record<string, unknown>;
      expect(Object.keys(variables)).toEqual(expect.arrayContaining(required));
      for (const name of Object.keys(variables)) expect(Object.keys(StepRunnerEnvironment.shape)).toContain(name);
    }
  });

  it('gives dev an environment the step runner accepts', () => {
    const variables = stepRunner(synthesized.dev.runner)[1].Properties!.Environment.Variables;
    expect(readStepRunnerEnvironment({ ...variables, AWS_REGION: REGION })).toEqual({
      STACKLINE_STACK: 'dev',
      STACKLINE_ARTIFACT_BUCKET: `stackline-dev-artifacts-${ACCOUNT}-${REGION}`,
      STACKLINE_ARTIFACT_PREFIX: 'stackline',
      STACKLINE_TABLE_PREFIX: 'stackline-dev',
      STACKLINE_PROMOTERS: ['iris_training'],
      STACKLINE_EVENT_BUS: 'default',
      STACKLINE_API_URL_PARAMETER: '/stackline/stackline-dev/api-url',
      AWS_REGION: REGION,
    });
  });

  it("finds the environment's API in SSM and may invoke exactly its two promotion routes, granted by the API stack", () => {
    const { runner, stage } = synthesized.dev;
    const role = stepRunner(runner)[1].Properties!.Role['Fn::GetAtt'][0];
    const ssmGrants = allowedFor(runner, role).filter((a) => a.action.startsWith('ssm:'));
    expect(ssmGrants).toEqual([
      {
        action: 'ssm:GetParameter',
        resource: `arn:aws:ssm:${REGION}:${ACCOUNT}:parameter/stackline/stackline-dev/api-url`,
      },
    ]);
    expect(allowedFor(runner, role).some((a) => a.action.startsWith('execute-api:'))).toBe(false);
    const api = Template.fromStack(stage.api);
    const policies = Object.values(api.findResources('AWS::IAM::Policy') as Record<string, Resource>).filter((p) =>
      (p.Properties!.Roles as unknown[]).includes('stackline-dev-step-runner'),
    );
    const statements = policies.flatMap((p) => p.Properties!.PolicyDocument.Statement as Statement[]);
    expect(statements.map((s) => asArray(s.Action))).toEqual([['execute-api:Invoke']]);
    expect(
      asArray(statements[0]!.Resource)
        .map((r) => render(r).replace(/^.*\/api\//, ''))
        .sort(),
    ).toEqual(['POST/models/*/versions/*/production', 'POST/models/*/versions/*/stage']);
    api.hasResourceProperties('AWS::SSM::Parameter', { Name: '/stackline/stackline-dev/api-url' });
    // The runner deploys without the API (the API stack depends on it, not the other way round).
    expect(stage.runner.dependencies).not.toContain(stage.api);
    expect(stage.api.dependencies).toContain(stage.runner);
  });

  it('lets only the pipelines an environment names promote to production, none by default', () => {
    const promoters = (name: 'dev' | 'prod') =>
      stepRunner(synthesized[name]!.runner)[1].Properties!.Environment.Variables.STACKLINE_PROMOTERS;
    expect(promoters('dev')).toBe('iris_training');
    expect(promoters('prod')).toBe('');
  });

  it('passes the KMS key and the Distributed Map threshold when the environment sets them', () => {
    const variables = stepRunner(synthesized.staging.runner)[1].Properties!.Environment.Variables;
    expect(variables.STACKLINE_SSE).toBe('aws:kms');
    expect(variables.STACKLINE_KMS_KEY_ID).toEqual({ 'Fn::ImportValue': expect.stringContaining('ArtifactKey') });
    expect(variables.STACKLINE_DISTRIBUTED_MAP_THRESHOLD).toBe('40');
  });

  it('lets the Lambda read and write the artifact store keys and list the bucket', () => {
    const { runner } = synthesized.dev;
    const role = stepRunner(runner)[1].Properties!.Role['Fn::GetAtt'][0];
    const allowed = allowedFor(runner, role);
    const bucketArn = `arn:aws:s3:::stackline-dev-artifacts-${ACCOUNT}-${REGION}`;
    for (const action of ['s3:GetObject', 's3:PutObject', 's3:DeleteObject', 's3:AbortMultipartUpload']) {
      expect(allowed).toContainEqual({ action, resource: `${bucketArn}/stackline/*` });
    }
    expect(allowed).toContainEqual({ action: 's3:ListBucket', resource: bucketArn });
  });

  it('lets the Lambda read and write every table but stages, and only read stage holders and history', () => {
    const { runner } = synthesized.dev;
    const allowed = allowedFor(runner, stepRunner(runner)[1].Properties!.Role['Fn::GetAtt'][0]);
    const { stages, ...dataTables } = tableDefinitions(tableNamesFor('stackline-dev'));
    const onTables = (resource: string) => resource.startsWith(`arn:aws:dynamodb:${REGION}:${ACCOUNT}:table/`);
    const actionsOn = (resource: string) =>
      allowed
        .filter((a) => a.resource === resource)
        .map((a) => a.action)
        .sort();
    const readWrite = [
      'dynamodb:BatchGetItem',
      'dynamodb:BatchWriteItem',
      'dynamodb:ConditionCheckItem',
      'dynamodb:DeleteItem',
      'dynamodb:GetItem',
      'dynamodb:PutItem',
      'dynamodb:Query',
      'dynamodb:Scan',
      'dynamodb:UpdateItem',
    ];
    const expected = new Map<string, string[]>();
    for (const definition of Object.values(dataTables)) {
      const tableArn = `arn:aws:dynamodb:${REGION}:${ACCOUNT}:table/${definition.TableName}`;
      expected.set(tableArn, readWrite);
      for (const index of definition.GlobalSecondaryIndexes ?? []) {
        expected.set(`${tableArn}/index/${index.IndexName}`, readWrite);
      }
    }
    const stagesArn = `arn:aws:dynamodb:${REGION}:${ACCOUNT}:table/${stages.TableName}`;
    expected.set(stagesArn, [
      'dynamodb:BatchGetItem',
      'dynamodb:ConditionCheckItem',
      'dynamodb:GetItem',
      'dynamodb:Query',
    ]);
    const granted = [...new Set(allowed.map((a) => a.resource).filter(onTables))].sort();
    expect(granted).toEqual([...expected.keys()].sort());
    for (const [resource, actions] of expected) expect(actionsOn(resource), resource).toEqual(actions);
  });

  it('lets the Lambda and the Distributed Map state machine use the KMS key of the bucket', () => {
    const { runner } = synthesized.staging;
    const lambdaRole = stepRunner(runner)[1].Properties!.Role['Fn::GetAtt'][0];
    const keyArn = (allowed: Array<{ action: string; resource: string }>, action: string) =>
      allowed.find((a) => a.action === action)?.resource;
    expect(keyArn(allowedFor(runner, lambdaRole), 'kms:GenerateDataKey')).toContain('ArtifactKey');
    expect(keyArn(allowedFor(runner, lambdaRole), 'kms:Decrypt')).toContain('ArtifactKey');
    expect(keyArn(allowedFor(runner, stateMachine(runner, 'fan_out').role), 'kms:Decrypt')).toContain('ArtifactKey');
  });
  it('outputs the function, bucket, table prefix and the stack register command', () => {
    const outputs = synthesized.dev.runner.toJSON().Outputs as Record<string, { Value: unknown }>;
    expect(Object.keys(outputs)).toEqual(
      expect.arrayContaining(['FunctionName', 'ArtifactBucket', 'TablePrefix', 'RegisterCommand']),
    );
    const [functionId] = stepRunner(synthesized.dev.runner);
    expect(render(outputs.RegisterCommand!.Value)).toBe(
      `npx stackline stack register dev --orchestrator step-functions ` +
        `--state-machine-prefix stackline-dev- --step-runner lambda --function-name <${functionId}> ` +
        `--artifact-store s3 --bucket stackline-dev-artifacts-${ACCOUNT}-${REGION} --prefix stackline ` +
        `--metadata-store dynamodb --table-prefix stackline-dev --region ${REGION}`,
    );
  });

  it('is deployed after the data stack it refers to by name', () => {
    const { stage } = synthesized.prod;
    expect(stage.runner.dependencies).toContain(stage.data);
  });
});

describe('the pipelines of an environment', () => {
  it('compiles every exported pipeline into a state machine named <prefix><pipeline>, tagged with its definition hash', async () => {
    const { simple } = await import('../fixtures/pipelines/simple.ts');
    const { fanOut } = await import('../fixtures/pipelines/fan-out.ts');
    const { runner } = synthesized.staging;
    expect(Object.keys(runner.findResources('AWS::StepFunctions::StateMachine'))).toHaveLength(2);
    for (const pipeline of [simple, fanOut]) {
      const { resource } = stateMachine(runner, pipeline.name);
      expect(resource.Properties!.StateMachineName).toBe(`stackline-staging-${pipeline.name}`);
      expect(resource.Properties!.Tags).toEqual(
        expect.arrayContaining([{ Key: 'stackline:definition-sha256', Value: pipelineDefinitionHash(pipeline) }]),
      );
      const expected = compileToAsl(pipeline, {
        lambdaFunctionArn: 'stackline-staging-step-runner',
        distributedMapThreshold: 40,
      }).json;
      expect(resource.Properties!.DefinitionString).toBe(expected);
    }
    expect(Object.keys(synthesized.dev.runner.findResources('AWS::StepFunctions::StateMachine'))).toHaveLength(1);
  });

  it('logs every state machine (ALL events) to its own log group and traces it with X-Ray', () => {
    for (const { runner } of Object.values(synthesized)) {
      const machines = Object.values(
        runner.findResources('AWS::StepFunctions::StateMachine') as Record<string, Resource>,
      );
      expect(machines.length).toBeGreaterThan(0);
      for (const machine of machines) {
        expect(machine.Properties!.TracingConfiguration).toEqual({ Enabled: true });
        expect(machine.Properties!.LoggingConfiguration).toMatchObject({
          Level: 'ALL',
          Destinations: [
            { CloudWatchLogsLogGroup: { LogGroupArn: { 'Fn::GetAtt': [expect.stringContaining('Logs'), 'Arn'] } } },
          ],
        });
      }
    }
  });

  it('publishes a version of every state machine and points the live alias at it', () => {
    const { runner } = synthesized.staging;
    for (const name of ['simple', 'fan_out']) {
      const { id, versionId, alias } = stateMachine(runner, name);
      expect(runner.toJSON().Resources[versionId].Properties.StateMachineRevisionId).toEqual({
        'Fn::GetAtt': [id, 'StateMachineRevisionId'],
      });
      expect(alias?.Properties).toMatchObject({
        Name: 'live',
        RoutingConfiguration: [{ StateMachineVersionArn: { 'Fn::GetAtt': [versionId, 'Arn'] }, Weight: 100 }],
      });
    }
  });

  it('lets a state machine without fan-outs invoke the step runner, and nothing else', () => {
    const { runner } = synthesized.staging;
    const [functionId] = stepRunner(runner);
    const allowed = allowedFor(runner, stateMachine(runner, 'simple').role);
    expect(allowed.filter((a) => !LOGS_AND_TRACING.includes(a.action))).toEqual([
      { action: 'lambda:InvokeFunction', resource: `<${functionId}.Arn>` },
    ]);
    expect([...new Set(allowed.map((a) => a.action))].sort()).toEqual(
      ['lambda:InvokeFunction', ...LOGS_AND_TRACING].sort(),
    );
  });

  it('lets a Distributed Map state machine read its item lists and run its own child executions, nothing more', () => {
    const { runner } = synthesized.staging;
    const [functionId] = stepRunner(runner);
    const allowed = allowedFor(runner, stateMachine(runner, 'fan_out').role);
    const states = `arn:aws:states:${REGION}:${ACCOUNT}`;
    expect(allowed.filter((a) => !LOGS_AND_TRACING.includes(a.action) && a.action !== 'kms:Decrypt')).toEqual([
      { action: 'lambda:InvokeFunction', resource: `<${functionId}.Arn>` },
      {
        action: 's3:GetObject',
        resource: `arn:aws:s3:::stackline-staging-artifacts-${ACCOUNT}-${REGION}/stackline/runs/*`,
      },
      { action: 'states:StartExecution', resource: `${states}:stateMachine:stackline-staging-fan_out` },
      { action: 'states:DescribeExecution', resource: `${states}:execution:stackline-staging-fan_out/*` },
      { action: 'states:StopExecution', resource: `${states}:execution:stackline-staging-fan_out/*` },
    ]);
  });

  it('fails synthesis when two modules of an environment export pipelines with one name', async () => {
    const app = new App({ outdir: join(outdir, 'duplicates') });
    await expect(
      addStacklineStages(app, {
        nag: false,
        environments: resolveEnvironments({
          selected: 'dev',
          overrides: { dev: { pipelines: [PIPELINE, 'test/fixtures/pipelines/simple-copy.ts'] } },
        }),
      }),
    ).rejects.toThrow(/pipeline "simple" is exported by both .*simple\.ts and .*simple-copy\.ts/);
  });
});

describe('cdk-nag AwsSolutions checks', () => {
  type Report = {
    pluginReports: Array<{ pluginName: string; violations: Array<{ ruleName: string; severity: string }> }>;
  };
  const errors = (report: Report) =>
    report.pluginReports.flatMap((plugin) =>
      plugin.violations.filter((v) => v.severity === 'error').map((v) => `${plugin.pluginName}: ${v.ruleName}`),
    );

  it('report no unacknowledged error for any environment', async () => {
    const report = JSON.parse(await readFile(join(outdir, 'validation-report.json'), 'utf8')) as Report;
    expect(errors(report)).toEqual([]);
  });

  it('are registered by addStacklineStages: an unacknowledged bucket is reported', async () => {
    const controlDir = join(outdir, 'nag-control');
    const app = new App({ outdir: controlDir, context: { '@aws-cdk/core:failSynthOnValidationErrors': false } });
    const [stage] = await addStacklineStages(app, {
      environments: resolveEnvironments({ selected: 'dev', overrides: { dev: { pipelines: [PIPELINE] } } }),
    });
    new s3.Bucket(stage!.data, 'Unlogged', { enforceSSL: true });
    app.synth();
    const report = JSON.parse(await readFile(join(controlDir, 'validation-report.json'), 'utf8')) as Report;
    expect(errors(report)).toEqual(['AwsSolutions: AwsSolutions-S1']);
  });
});
