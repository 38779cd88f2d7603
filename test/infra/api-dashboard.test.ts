/** The dashboard on AWS: its files in the API function's code asset, GET / and assets under AWS_IAM. */
import { existsSync, readdirSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { App } from 'aws-cdk-lib';
import { Template } from 'aws-cdk-lib/assertions';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ApiStack } from '../../infra/api-stack.ts';
import { builtDashboardDirectory } from '../../lib/api/static-dashboard.ts';
import { bundleApiLambda } from '../../lib/bundle/bundle-api-lambda.ts';

// biome-ignore lint/suspicious/noExplicitAny: template JSON, checked by the assertions themselves
type Json = any;

let dir: string;
let template: Template;
let outdir: string;

beforeAll(async () => {
  expect(builtDashboardDirectory(), 'the dashboard is built by `npm run build`').toBeDefined();
  dir = await mkdtemp(join(tmpdir(), 'stackline-api-dashboard-'));
  await bundleApiLambda(join(dir, 'api', 'index.mjs'));
  outdir = join(dir, 'cdk.out');
  const app = new App({ outdir });
  const stack = new ApiStack(app, 'Stackline-dev-Api', {
    env: { account: '123456789012', region: 'eu-west-1' },
    stacklineStack: 'dev',
    bucketName: 'ml-artifacts',
    artifactPrefix: 'stackline',
    tablePrefix: 'stackline-dev',
    codeDirectory: join(dir, 'api'),
  });
  template = Template.fromStack(stack);
  app.synth();
}, 120_000);
afterAll(() => rm(dir, { recursive: true, force: true }));

const resources = (type: string): Json[] => Object.values(template.findResources(type));

describe('the dashboard on the API stack', () => {
  it("ships the dashboard's page and assets in the API function's code asset", () => {
    const fn = resources('AWS::Lambda::Function').find((f) => f.Properties.FunctionName === 'stackline-dev-api');
    // The code asset is staged as cdk.out/asset.<hash>/ and uploaded as <hash>.zip.
    const hash = String(fn.Properties.Code.S3Key).replace(/\.zip$/, '');
    const staged = join(outdir, `asset.${hash}`);
    expect(existsSync(join(staged, 'index.mjs'))).toBe(true);
    expect(existsSync(join(staged, 'dashboard', 'index.html'))).toBe(true);
    const built = readdirSync(join(builtDashboardDirectory()!, 'assets')).sort();
    expect(readdirSync(join(staged, 'dashboard', 'assets')).sort()).toEqual(built);
  });

  it('routes GET / and GET /assets/{file} to the API function with AWS_IAM', () => {
    const api = resources('AWS::ApiGateway::RestApi')[0];
    expect(api).toBeDefined();
    const methods = resources('AWS::ApiGateway::Method');
    const rootGet = methods.find((m) => m.Properties.HttpMethod === 'GET' && m.Properties.ResourceId['Fn::GetAtt']);
    expect(rootGet.Properties.ResourceId['Fn::GetAtt'][1]).toBe('RootResourceId');
    expect(rootGet.Properties.AuthorizationType).toBe('AWS_IAM');

    const byLogicalId = template.findResources('AWS::ApiGateway::Resource') as Record<string, Json>;
    const file = Object.entries(byLogicalId).find(([, r]) => r.Properties.PathPart === '{file}');
    expect(file).toBeDefined();
    const parent = byLogicalId[file![1].Properties.ParentId.Ref];
    expect(parent.Properties.PathPart).toBe('assets');
    const fileGet = methods.find((m) => m.Properties.ResourceId.Ref === file![0]);
    expect(fileGet.Properties).toMatchObject({ HttpMethod: 'GET', AuthorizationType: 'AWS_IAM' });
    expect(JSON.stringify(fileGet.Properties.Integration)).toEqual(JSON.stringify(rootGet.Properties.Integration));
  });
});
