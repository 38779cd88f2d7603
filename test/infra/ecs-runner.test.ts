/**
 * The ECS half of the step runner in the synthesized templates: dev serves a pipeline with an ECS
 * step (new VPC), staging the same with an imported VPC, prod only Lambda steps (no ECS resources).
 * One app, synthesized once with the cdk-nag checks. The image asset is staged, not built: Docker
 * builds it at `cdk deploy`.
 */
import { mkdtemp, readFile, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { App, Stack } from 'aws-cdk-lib';
import { Template } from 'aws-cdk-lib/assertions';
import * as ec2 from 'aws-cdk-lib/aws-ec2';
import * as ecs from 'aws-cdk-lib/aws-ecs';
import * as sfn from 'aws-cdk-lib/aws-stepfunctions';
import * as tasks from 'aws-cdk-lib/aws-stepfunctions-tasks';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { resolveEnvironments } from '../../infra/environments.ts';
import { addStacklineStages, type StacklineStage } from '../../infra/stackline-app.ts';
import { allowedFor, type Json, type Resource, render, stateMachine } from '../support/cfn-template.ts';

const ACCOUNT = '123456789012';
const REGION = 'eu-west-1';
const SIMPLE = 'test/fixtures/pipelines/simple.ts';
const ECS_PIPELINE = 'test/fixtures/pipelines/ecs.ts';
const IMPORTED = {
  vpcId: 'vpc-0abc1234',
  subnetIds: ['subnet-0aaa1111', 'subnet-0bbb2222'],
  availabilityZones: ['eu-west-1a', 'eu-west-1b'],
};

let outdir: string;
const stages = {} as Record<'dev' | 'staging' | 'prod', { stage: StacklineStage; runner: Template }>;

beforeAll(async () => {
  outdir = await mkdtemp(join(tmpdir(), 'stackline-ecs-infra-'));
  const app = new App({ outdir, context: { '@aws-cdk/core:failSynthOnValidationErrors': false } });
  const added = await addStacklineStages(app, {
    environments: resolveEnvironments({
      overrides: {
        dev: { pipelines: [SIMPLE, ECS_PIPELINE] },
        staging: { pipelines: [ECS_PIPELINE], ecs: { vpc: IMPORTED, cpu: 2048, memoryMb: 4096 } },
        prod: { pipelines: [SIMPLE] },
      },
      defaultAccount: ACCOUNT,
      defaultRegion: REGION,
    }),
  });
  app.synth();
  for (const stage of added) stages[stage.environment.name] = { stage, runner: Template.fromStack(stage.runner) };
});

afterAll(async () => {
  if (outdir) await rm(outdir, { recursive: true, force: true });
});

const only = (template: Template, type: string): [string, Resource] => {
  const found = Object.entries(template.findResources(type) as Record<string, Resource>);
  expect(found, type).toHaveLength(1);
  return found[0]!;
};
/** The step runner function (the runner stack also holds the execution-status Lambda). */
const stepRunner = (template: Template): [string, Resource] => {
  const found = Object.entries(template.findResources('AWS::Lambda::Function') as Record<string, Resource>).filter(
    ([id]) => id.startsWith('StepRunner'),
  );
  expect(found, 'the StepRunner function').toHaveLength(1);
  return found[0]!;
};
const roleOf = (template: Template, description: RegExp) =>
  Object.entries(template.findResources('AWS::IAM::Role') as Record<string, Resource>).find(([, r]) =>
    description.test(r.Properties!.Description ?? ''),
  )![0];
const pairs = (allowed: Array<{ action: string; resource: string }>) =>
  allowed.map(({ action, resource }) => `${action} ${resource}`).sort();

describe('an environment with ECS steps (dev: a new VPC)', () => {
  it('creates a VPC with private task subnets, one NAT gateway, S3 and DynamoDB gateway endpoints and flow logs', () => {
    const { runner } = stages.dev;
    const [, vpc] = only(runner, 'AWS::EC2::VPC');
    expect(vpc.Properties).toMatchObject({ EnableDnsHostnames: true, EnableDnsSupport: true });
    runner.resourceCountIs('AWS::EC2::NatGateway', 1);
    runner.resourceCountIs('AWS::EC2::Subnet', 4);
    const endpoints = Object.values(runner.findResources('AWS::EC2::VPCEndpoint') as Record<string, Resource>);
    expect(endpoints.map((e) => [e.Properties!.VpcEndpointType, render(e.Properties!.ServiceName)]).sort()).toEqual([
      ['Gateway', 'com.amazonaws.<AWS::Region>.dynamodb'],
      ['Gateway', 'com.amazonaws.<AWS::Region>.s3'],
    ]);
    const [, flowLog] = only(runner, 'AWS::EC2::FlowLog');
    expect(flowLog.Properties).toMatchObject({ ResourceType: 'VPC', TrafficType: 'ALL' });
    const [, group] = only(runner, 'AWS::EC2::SecurityGroup');
    expect(group.Properties!.SecurityGroupIngress).toBeUndefined();
  });

  it('creates a cluster with Container Insights', () => {
    const [, cluster] = only(stages.dev.runner, 'AWS::ECS::Cluster');
    expect(cluster.Properties!.ClusterSettings).toEqual([{ Name: 'containerInsights', Value: 'enabled' }]);
  });

  it('defines an arm64 Fargate task from the bundled container image, logging to a retained log group', async () => {
    const { runner, stage } = stages.dev;
    const [, definition] = only(runner, 'AWS::ECS::TaskDefinition');
    expect(definition.Properties).toMatchObject({
      Family: 'stackline-dev-step-runner',
      RequiresCompatibilities: ['FARGATE'],
      NetworkMode: 'awsvpc',
      Cpu: '1024',
      Memory: '2048',
      RuntimePlatform: { CpuArchitecture: 'ARM64', OperatingSystemFamily: 'LINUX' },
    });
    const [container] = definition.Properties!.ContainerDefinitions as Json[];
    expect(container).toMatchObject({
      Name: 'step-runner',
      Essential: true,
      ReadonlyRootFilesystem: true,
      MountPoints: [{ ContainerPath: '/tmp', SourceVolume: 'tmp', ReadOnly: false }],
      LogConfiguration: { LogDriver: 'awslogs', Options: { 'awslogs-stream-prefix': 'task' } },
    });
    // The image is the container asset of the environment's bundle, built for arm64 at deploy.
    expect(container.Image['Fn::Sub']).toMatch(/cdk-hnb659fds-container-assets-.*:[0-9a-f]{64}$/);
    const manifest = JSON.parse(await readFile(join(outdir, `${stage.runner.artifactId}.assets.json`), 'utf8'));
    const images = Object.values(manifest.dockerImages) as Array<{ source: { directory: string; platform: string } }>;
    expect(images).toHaveLength(1);
    expect(images[0]!.source.platform).toBe('linux/arm64');
    const staged = join(outdir, images[0]!.source.directory);
    expect((await stat(join(staged, 'Dockerfile'))).isFile()).toBe(true);
    expect((await stat(join(staged, 'index.mjs'))).size).toBeGreaterThan(1000);

    const logGroupId = container.LogConfiguration.Options['awslogs-group'].Ref;
    expect(runner.toJSON().Resources[logGroupId].Properties).toEqual({
      LogGroupName: '/stackline/stackline-dev/ecs-step-runner',
      RetentionInDays: 30,
    });
  });

  it('sets the Lambda step runner environment on the container, plus the region', () => {
    const { runner } = stages.dev;
    const [, definition] = only(runner, 'AWS::ECS::TaskDefinition');
    const [container] = definition.Properties!.ContainerDefinitions as Json[];
    const [, fn] = stepRunner(runner);
    const lambdaEnvironment = Object.entries(fn.Properties!.Environment.Variables as Record<string, Json>);
    const containerEnvironment = (container.Environment as Array<{ Name: string; Value: Json }>).map((v) => [
      v.Name,
      v.Value,
    ]);
    expect(containerEnvironment.sort()).toEqual([...lambdaEnvironment, ['AWS_REGION', REGION]].sort());
  });

  it('gives the task role exactly the Lambda step runner data grants, and task-token reporting on the ECS pipeline', () => {
    const { runner } = stages.dev;
    const lambdaRole = stepRunner(runner)[1].Properties!.Role['Fn::GetAtt'][0];
    const lambdaData = allowedFor(runner, lambdaRole).filter((p) => !p.action.startsWith('logs:'));
    const taskRole = roleOf(runner, /on ECS/);
    const machine = `arn:aws:states:${REGION}:${ACCOUNT}:stateMachine:stackline-dev-ecs_training`;
    expect(pairs(allowedFor(runner, taskRole))).toEqual(
      pairs([
        ...lambdaData,
        ...['states:SendTaskFailure', 'states:SendTaskHeartbeat', 'states:SendTaskSuccess'].map((action) => ({
          action,
          resource: machine,
        })),
      ]),
    );
    expect(lambdaData.map((p) => p.action)).toEqual(expect.arrayContaining(['s3:GetObject', 'dynamodb:PutItem']));
  });

  it('lets the task role promote through the API as a runner: the same promotion routes as the Lambda role', () => {
    const api = Template.fromStack(stages.dev.stage.api);
    const routesFor = (roleName: string) =>
      Object.values(api.findResources('AWS::IAM::Policy') as Record<string, Resource>)
        .filter((p) => (p.Properties!.Roles as unknown[]).includes(roleName))
        .flatMap((p) => p.Properties!.PolicyDocument.Statement as Json[])
        .flatMap((s) => [s.Resource].flat().map((r: unknown) => `${s.Action} ${render(r).replace(/^.*\/api\//, '')}`))
        .sort();
    expect(routesFor('stackline-dev-ecs-step-runner')).toEqual([
      'execute-api:Invoke POST/models/*/versions/*/production',
      'execute-api:Invoke POST/models/*/versions/*/stage',
    ]);
    expect(routesFor('stackline-dev-ecs-step-runner')).toEqual(routesFor('stackline-dev-step-runner'));
    // prod has no ECS steps: only the Lambda's role is a runner there.
    const prodApi = Template.fromStack(stages.prod.stage.api);
    expect(JSON.stringify(prodApi.toJSON())).not.toContain('ecs-step-runner');
  });

  it('lets the execution role pull the image and write the task logs, nothing else', () => {
    const { runner } = stages.dev;
    const executionRole = roleOf(runner, /Pulls the Stackline step-runner image/);
    const actions = allowedFor(runner, executionRole);
    expect([...new Set(actions.map((a) => a.action))].sort()).toEqual([
      'ecr:BatchCheckLayerAvailability',
      'ecr:BatchGetImage',
      'ecr:GetAuthorizationToken',
      'ecr:GetDownloadUrlForLayer',
      'logs:CreateLogStream',
      'logs:PutLogEvents',
    ]);
    expect(actions.filter((a) => a.resource === '*').map((a) => a.action)).toEqual(['ecr:GetAuthorizationToken']);
    expect(actions.find((a) => a.action === 'ecr:BatchGetImage')!.resource).toMatch(
      /repository\/cdk-hnb659fds-container-assets/,
    );
  });

  it('grants the ECS pipeline state machine RunTask on the task definition and PassRole on exactly its two roles', () => {
    const { runner } = stages.dev;
    const { role } = stateMachine(runner, 'ecs_training');
    const taskDefinition = only(runner, 'AWS::ECS::TaskDefinition')[0];
    const [taskRole, executionRole] = [roleOf(runner, /on ECS/), roleOf(runner, /Pulls the Stackline/)];
    const allowed = allowedFor(runner, role).filter(
      (a) => !a.action.startsWith('logs:') && !a.action.startsWith('xray:'),
    );
    expect(pairs(allowed)).toEqual(
      pairs([
        { action: 'lambda:InvokeFunction', resource: `<${stepRunner(runner)[0]}.Arn>` },
        { action: 'ecs:RunTask', resource: `<${taskDefinition}>` },
        { action: 'iam:PassRole', resource: `<${taskRole}.Arn>` },
        { action: 'iam:PassRole', resource: `<${executionRole}.Arn>` },
      ]),
    );
    const statements = Object.values(runner.findResources('AWS::IAM::Policy') as Record<string, Resource>)
      .filter((p) => p.Properties!.Roles.some((r: { Ref: string }) => r.Ref === role))
      .flatMap((p) => p.Properties!.PolicyDocument.Statement as Json[]);
    expect(statements.find((s) => s.Action === 'iam:PassRole').Condition).toEqual({
      StringEquals: { 'iam:PassedToService': 'ecs-tasks.amazonaws.com' },
    });
    expect(statements.find((s) => s.Action === 'ecs:RunTask').Condition).toEqual({
      ArnEquals: { 'ecs:cluster': { 'Fn::GetAtt': [only(runner, 'AWS::ECS::Cluster')[0], 'Arn'] } },
    });
    // The Lambda-only pipeline of the same environment gets none of it.
    const simple = allowedFor(runner, stateMachine(runner, 'simple').role).map((a) => a.action);
    expect(simple.filter((a) => a.startsWith('ecs:') || a.startsWith('iam:'))).toEqual([]);
  });

  it('grants what stepfunctions-tasks EcsRunTask grants for a task-token RunTask, minus StopTask/DescribeTasks (.sync only)', () => {
    const stack = new Stack(new App(), 'Reference', { env: { account: ACCOUNT, region: REGION } });
    const taskDefinition = new ecs.FargateTaskDefinition(stack, 'TaskDefinition');
    taskDefinition.addContainer('step-runner', { image: ecs.ContainerImage.fromRegistry('node:22-slim') });
    const task = new tasks.EcsRunTask(stack, 'RunTask', {
      integrationPattern: sfn.IntegrationPattern.WAIT_FOR_TASK_TOKEN,
      cluster: new ecs.Cluster(stack, 'Cluster', { vpc: new ec2.Vpc(stack, 'Vpc') }),
      taskDefinition,
      launchTarget: new tasks.EcsFargateLaunchTarget(),
      containerOverrides: [
        {
          containerDefinition: taskDefinition.defaultContainer!,
          environment: [{ name: 'STACKLINE_TASK_TOKEN', value: sfn.JsonPath.taskToken }],
        },
      ],
    });
    new sfn.StateMachine(stack, 'Machine', { definitionBody: sfn.DefinitionBody.fromChainable(task) });
    const referenceActions = Object.values(
      Template.fromStack(stack).findResources('AWS::IAM::Policy') as Record<string, Resource>,
    )
      .flatMap((p) => p.Properties!.PolicyDocument.Statement as Json[])
      .flatMap((statement) => [statement.Action].flat() as string[]);
    const { runner } = stages.dev;
    const ours = allowedFor(runner, stateMachine(runner, 'ecs_training').role)
      .map((a) => a.action)
      .filter((a) => a.startsWith('ecs:') || a.startsWith('iam:') || a.startsWith('events:'));
    expect([...new Set(referenceActions)].sort()).toEqual([
      'ecs:DescribeTasks',
      'ecs:RunTask',
      'ecs:StopTask',
      'iam:PassRole',
    ]);
    expect([...new Set(ours)].sort()).toEqual(['ecs:RunTask', 'iam:PassRole']);
  });

  it('compiles the ECS step against the deployed cluster, task definition, private subnets and security group', () => {
    const { runner } = stages.dev;
    const { resource } = stateMachine(runner, 'ecs_training');
    const definition = render(resource.Properties!.DefinitionString);
    const cluster = only(runner, 'AWS::ECS::Cluster')[0];
    const taskDefinition = only(runner, 'AWS::ECS::TaskDefinition')[0];
    const group = only(runner, 'AWS::EC2::SecurityGroup')[0];
    const privateSubnets = Object.entries(runner.findResources('AWS::EC2::Subnet') as Record<string, Resource>)
      .filter(([, s]) => s.Properties!.MapPublicIpOnLaunch === false)
      .map(([id]) => `"<${id}>"`);
    expect(privateSubnets).toHaveLength(2);
    expect(definition).toContain('"Resource":"arn:aws:states:::ecs:runTask.waitForTaskToken"');
    expect(definition).toContain(`"Cluster":"<${cluster}.Arn>","TaskDefinition":"<${taskDefinition}>"`);
    expect(definition).toContain(
      `"Subnets":[${privateSubnets.join(',')}],"SecurityGroups":["<${group}.GroupId>"],"AssignPublicIp":"DISABLED"`,
    );
    expect(definition).toContain('"Name":"step-runner","Cpu":2048,"Memory":8192');
  });

  it('outputs the ECS settings the compiler takes', () => {
    const outputs = stages.dev.runner.findOutputs('*') as Record<string, { Value: Json }>;
    const byName = (suffix: string) =>
      Object.entries(outputs).find(([name]) => name.startsWith(`EcsRunner${suffix}`))?.[1];
    expect(render(byName('ClusterArn')!.Value)).toMatch(/^<EcsRunnerCluster.*\.Arn>$/);
    expect(render(byName('TaskDefinitionArn')!.Value)).toMatch(/^<EcsRunnerTaskDefinition.*>$/);
    expect(byName('ContainerName')!.Value).toBe('step-runner');
    expect(render(byName('Subnets')!.Value).split(',')).toHaveLength(2);
    expect(render(byName('SecurityGroup')!.Value)).toMatch(/^<EcsRunnerTaskSecurityGroup.*\.GroupId>$/);
    // `stackline deploy` registers the environment from RegisterCommand: the ECS settings go with it.
    const register = render(outputs.RegisterCommand!.Value);
    expect(register).toMatch(
      / --ecs-cluster-arn <EcsRunnerCluster\w+\.Arn> --ecs-task-definition-arn <EcsRunnerTaskDefinition\w+> --ecs-container-name step-runner --ecs-subnets <[^>]+>,<[^>]+> --ecs-security-groups <EcsRunnerTaskSecurityGroup\w+\.GroupId>$/,
    );
    const prod = stages.prod.runner.findOutputs('RegisterCommand') as Record<string, { Value: Json }>;
    expect(render(prod.RegisterCommand!.Value)).not.toContain('--ecs-');
  });
});

describe('an environment with ECS steps and an imported VPC (staging)', () => {
  it('creates no VPC and runs the tasks in the given subnets, with the configured task size', () => {
    const { runner } = stages.staging;
    runner.resourceCountIs('AWS::EC2::VPC', 0);
    runner.resourceCountIs('AWS::EC2::NatGateway', 0);
    const [group, security] = only(runner, 'AWS::EC2::SecurityGroup');
    expect(security.Properties!.VpcId).toBe(IMPORTED.vpcId);
    expect(only(runner, 'AWS::ECS::TaskDefinition')[1].Properties).toMatchObject({ Cpu: '2048', Memory: '4096' });
    const definition = render(stateMachine(runner, 'ecs_training').resource.Properties!.DefinitionString);
    expect(definition).toContain(
      `"Subnets":${JSON.stringify(IMPORTED.subnetIds)},"SecurityGroups":["<${group}.GroupId>"]`,
    );
  });

  it('rejects an imported VPC whose zones do not match its subnets, naming the setting', () => {
    expect(() =>
      resolveEnvironments({
        selected: 'dev',
        overrides: { dev: { ecs: { vpc: { ...IMPORTED, availabilityZones: ['eu-west-1a'] } } } },
      }),
    ).toThrow(/dev\.ecs\.vpc: one availability zone per subnet/);
  });
});

describe('an environment without ECS steps (prod)', () => {
  it('has no VPC, cluster, task definition or image asset', async () => {
    const { runner, stage } = stages.prod;
    for (const type of ['AWS::EC2::VPC', 'AWS::EC2::SecurityGroup', 'AWS::ECS::Cluster', 'AWS::ECS::TaskDefinition'])
      runner.resourceCountIs(type, 0);
    expect(stage.ecsRunner).toBeUndefined();
    const manifest = JSON.parse(await readFile(join(outdir, `${stage.runner.artifactId}.assets.json`), 'utf8'));
    expect(manifest.dockerImages ?? {}).toEqual({});
  });
});

describe('cdk-nag AwsSolutions on environments with ECS steps', () => {
  it('reports no unacknowledged error', async () => {
    type Report = {
      pluginReports: Array<{
        pluginName: string;
        violations: Array<{
          ruleName: string;
          severity: string;
          violatingConstructs: Array<{ constructPath: string }>;
        }>;
      }>;
    };
    const report = JSON.parse(await readFile(join(outdir, 'validation-report.json'), 'utf8')) as Report;
    const errors = report.pluginReports.flatMap((plugin) =>
      plugin.violations
        .filter((v) => v.severity === 'error')
        .map((v) => `${v.ruleName} ${v.violatingConstructs.map((c) => c.constructPath).join(', ')}`),
    );
    expect(errors).toEqual([]);
  });
});
