/** Unit tests on the synthesized CloudFormation of `infra/api-stack.ts`. */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { App } from 'aws-cdk-lib';
import { Template } from 'aws-cdk-lib/assertions';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ApiStack } from '../../infra/api-stack.ts';
import { TABLE_DATA_ACTIONS } from '../../infra/runner-stack.ts';
import { API_ROUTES } from '../../lib/api/routes.ts';
import { DASHBOARD_PATHS } from '../../lib/api/static-dashboard.ts';
import { bundleApiLambda } from '../../lib/bundle/bundle-api-lambda.ts';

// biome-ignore lint/suspicious/noExplicitAny: template JSON, checked by the assertions themselves
type Json = any;

let dir: string;
let template: Template;

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'stackline-api-infra-'));
  await bundleApiLambda(join(dir, 'api', 'index.mjs'));
  const app = new App({ outdir: join(dir, 'cdk.out') });
  const stack = new ApiStack(app, 'Stackline-prod-Api', {
    env: { account: '123456789012', region: 'eu-west-1' },
    stacklineStack: 'prod',
    bucketName: 'ml-artifacts',
    artifactPrefix: 'stackline',
    tablePrefix: 'stackline-prod',
    codeDirectory: join(dir, 'api'),
    releaseManagerArns: ['arn:aws:sts::123456789012:assumed-role/ml-release-managers/'],
    pipelines: { iris_training: 'a'.repeat(64), iris_inference: 'b'.repeat(64) },
    promoters: ['iris_training'],
  });
  template = Template.fromStack(stack);
}, 120_000);
afterAll(() => rm(dir, { recursive: true, force: true }));

/** Renders an ARN built with Fn::Join into a readable string: the REST API's id becomes `API`. */
function render(value: Json): string {
  if (typeof value === 'string') return value;
  if (value['Fn::Join']) return value['Fn::Join'][1].map(render).join(value['Fn::Join'][0]);
  if (value.Ref) return value.Ref.startsWith('AWS::') ? `\${${value.Ref}}` : 'API';
  throw new Error(`cannot render ${JSON.stringify(value)}`);
}

const arn = (method: string, path: string) =>
  `arn:\${AWS::Partition}:execute-api:eu-west-1:123456789012:API/api/${method}${path}`;

function policyStatements(namePart: string): Array<{ Effect: string; Action: string[]; Resource: string[] }> {
  const policies = Object.values(template.findResources('AWS::IAM::ManagedPolicy')) as Json[];
  const policy = policies.find((p) => p.Properties.ManagedPolicyName.endsWith(namePart));
  return policy.Properties.PolicyDocument.Statement.map((s: Json) => ({
    Effect: s.Effect,
    Action: [s.Action].flat(),
    Resource: [s.Resource].flat().map(render).sort(),
  }));
}

describe('ApiStack', () => {
  it('puts AWS_IAM authorization on every method, one method per documented route', () => {
    const methods = Object.values(template.findResources('AWS::ApiGateway::Method')) as Json[];
    expect(methods).toHaveLength(API_ROUTES.length + 1 + DASHBOARD_PATHS.length);
    for (const m of methods) expect(m.Properties.AuthorizationType).toBe('AWS_IAM');
  });

  it('gives members exactly: every GET, the member writes, and a deny on protected aliases', () => {
    expect(policyStatements('-api-members')).toEqual([
      {
        Effect: 'Allow',
        Action: ['execute-api:Invoke'],
        Resource: [
          arn('DELETE', '/models/*/aliases/*'),
          arn('GET', '/*'),
          arn('PATCH', '/artifacts/*/versions/*/metadata'),
          arn('PATCH', '/models/*/versions/*/metadata'),
          arn('PATCH', '/runs/*/metadata'),
          arn('POST', '/runs'),
          arn('POST', '/artifacts/*/versions/*/tags'),
          arn('POST', '/models/*/versions/*/stage'),
          arn('PUT', '/models/*/aliases/*'),
        ].sort(),
      },
      {
        Effect: 'Deny',
        Action: ['execute-api:Invoke'],
        Resource: [arn('DELETE', '/models/*/aliases/champion'), arn('PUT', '/models/*/aliases/champion')].sort(),
      },
    ]);
  });

  it('leaves production promotion out of the members policy', () => {
    const resources = policyStatements('-api-members').flatMap((s) => s.Resource);
    expect(resources.some((r) => r.includes('production'))).toBe(false);
    expect(resources.some((r) => r.includes('/POST/*') || r.includes('/*/*'))).toBe(false);
  });

  it('gives release managers exactly every route', () => {
    expect(policyStatements('-api-release-managers')).toEqual([
      { Effect: 'Allow', Action: ['execute-api:Invoke'], Resource: [arn('*', '/*')] },
    ]);
  });

  it('logs access and throttles the stage', () => {
    const stage = Object.values(template.findResources('AWS::ApiGateway::Stage'))[0] as Json;
    expect(stage.Properties.AccessLogSetting.DestinationArn).toBeDefined();
    expect(stage.Properties.AccessLogSetting.Format).toContain('$context.identity.caller');
    expect(stage.Properties.MethodSettings).toEqual([
      expect.objectContaining({
        HttpMethod: '*',
        ResourcePath: '/*',
        ThrottlingRateLimit: 50,
        ThrottlingBurstLimit: 100,
      }),
    ]);
  });

  it('configures the function with the environment the Lambda entry reads', () => {
    template.hasResourceProperties('AWS::Lambda::Function', {
      Handler: 'index.handler',
      Environment: {
        Variables: {
          STACKLINE_STACK: 'prod',
          STACKLINE_ARTIFACT_BUCKET: 'ml-artifacts',
          STACKLINE_ARTIFACT_PREFIX: 'stackline',
          STACKLINE_TABLE_PREFIX: 'stackline-prod',
          STACKLINE_RELEASE_MANAGER_ARNS: 'arn:aws:sts::123456789012:assumed-role/ml-release-managers/',
          STACKLINE_PROMOTERS: 'iris_training',
          STACKLINE_DEPLOYED_PIPELINES: JSON.stringify({
            iris_training: 'a'.repeat(64),
            iris_inference: 'b'.repeat(64),
          }),
          POWERTOOLS_SERVICE_NAME: 'stackline-api',
        },
      },
    });
  });

  it('names the runner role and the state machines in the environment the Lambda entry reads', () => {
    const fn = Object.values(template.findResources('AWS::Lambda::Function'))[0] as Json;
    const variables = fn.Properties.Environment.Variables;
    expect(render(variables.STACKLINE_RUNNER_ROLE_ARNS)).toBe(
      `arn:\${AWS::Partition}:sts::123456789012:assumed-role/stackline-prod-step-runner/`,
    );
    expect(render(variables.STACKLINE_STATE_MACHINE_ARN_PREFIX)).toBe(
      `arn:\${AWS::Partition}:states:eu-west-1:123456789012:stateMachine:stackline-prod-`,
    );
  });

  it("gives the function exactly: the tables' data actions, GetObject, logs and StartExecution on the live aliases", () => {
    // The function role's policies (the API stack also holds the runner role's promotion grant).
    const policies = (Object.values(template.findResources('AWS::IAM::Policy')) as Json[]).filter((p) =>
      p.Properties.Roles.some((r: Json) => r.Ref?.startsWith('ApiFunctionRole')),
    );
    const statements = policies.flatMap((p) => p.Properties.PolicyDocument.Statement);
    const actions = [...new Set(statements.flatMap((s: Json) => [s.Action].flat()))].sort();
    expect(actions).toEqual(
      [
        ...TABLE_DATA_ACTIONS,
        's3:GetObject',
        'logs:CreateLogStream',
        'logs:PutLogEvents',
        'states:StartExecution',
      ].sort(),
    );
    const states = statements.filter((s: Json) => [s.Action].flat().some((a: string) => a.startsWith('states:')));
    expect(states.map((s: Json) => [[s.Action].flat(), [s.Resource].flat().map(render).sort()])).toEqual([
      [
        ['states:StartExecution'],
        [
          `arn:\${AWS::Partition}:states:eu-west-1:123456789012:stateMachine:stackline-prod-iris_inference:live`,
          `arn:\${AWS::Partition}:states:eu-west-1:123456789012:stateMachine:stackline-prod-iris_training:live`,
        ],
      ],
    ]);
  });

  it("gives the function only GetObject on the store's keys (for presigned downloads)", () => {
    const policies = Object.values(template.findResources('AWS::IAM::Policy')) as Json[];
    const s3 = policies
      .flatMap((p) => p.Properties.PolicyDocument.Statement)
      .filter((s: Json) => [s.Action].flat().some((a: string) => a.startsWith('s3:')));
    expect(s3.map((s: Json) => [[s.Action].flat(), render(s.Resource)])).toEqual([
      [['s3:GetObject'], `arn:\${AWS::Partition}:s3:::ml-artifacts/stackline/*`],
    ]);
  });
});
