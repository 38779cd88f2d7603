/**
 * Where an environment's `runner: 'ecs'` steps run: a VPC (or an imported one), an ECS cluster and
 * one arm64 Fargate task definition holding the step runner's container. Added to the runner stack
 * only for environments whose pipelines have ECS steps (see `infra/stackline-app.ts`).
 */

import { Arn, ArnFormat, CfnOutput, RemovalPolicy, Stack } from 'aws-cdk-lib';
import * as ec2 from 'aws-cdk-lib/aws-ec2';
import { Platform } from 'aws-cdk-lib/aws-ecr-assets';
import * as ecs from 'aws-cdk-lib/aws-ecs';
import * as iam from 'aws-cdk-lib/aws-iam';
import * as logs from 'aws-cdk-lib/aws-logs';
import { Construct } from 'constructs';
import type { EcsRunnerOptions } from '../lib/compiler/compile-to-asl.ts';
import type { PipelineDefinition } from '../lib/dsl/pipeline.ts';
import { acknowledgeRule, acknowledgeWildcardResource } from './nag.ts';
import type { EventPublisher } from './pipeline-triggers.ts';

/** An existing VPC for the tasks (cdk.json `ecs.vpc`): attributes, because a lookup needs AWS at synth. */
export interface ImportedVpc {
  vpcId: string;
  /** The subnets tasks run in (private, with a route to S3, DynamoDB, ECR, CloudWatch Logs and Step Functions). */
  subnetIds: string[];
  /** One per subnet, in the same order. */
  availabilityZones: string[];
}

/** Props of {@link EcsRunner}. */
/** The ECS step runner's task role name: a runner principal for the API, like the Lambda's role. */
export function ecsTaskRoleName(tablePrefix: string): string {
  return `${tablePrefix}-ecs-step-runner`;
}

export interface EcsRunnerProps {
  /** The Stackline stack name (descriptions). */
  stacklineStack: string;
  /** The task definition family is `<tablePrefix>-step-runner`. */
  tablePrefix: string;
  /** A directory with the container's `Dockerfile` and bundle (`<outDir>/container` of `bundlePipeline`). */
  containerDirectory: string;
  /** What the container reads (the step runner's environment: the Lambda's, see `RunnerStack`). */
  environment: Record<string, string>;
  /** The step runner's data grants (the Lambda's): the task role gets exactly these. */
  dataStatements: readonly iam.PolicyStatement[];
  /** The artifact keys wildcard among `dataStatements` (acknowledged for cdk-nag as on the Lambda role). */
  storeObjectsArn: string;
  /** Default: a new VPC (2 AZs, one NAT gateway, S3 and DynamoDB gateway endpoints, flow logs). */
  vpc?: ImportedVpc;
  /** The task definition's size, used by ECS steps that declare no `resources` (others override it per run). Default 1 vCPU, 2048 MiB. */
  cpu?: number;
  memoryMb?: number;
}

/** Whether the graph a pipeline deploys with (its default parameters) has a `runner: 'ecs'` step. */
export function hasEcsSteps(pipeline: PipelineDefinition): boolean {
  return pipeline.build(pipeline.parseParameters({})).nodes.some((node) => node.spec.options.runner === 'ecs');
}

/** The container's name in the task definition (the state machines' container override names it). */
export const STEP_RUNNER_CONTAINER = 'step-runner';

/**
 * The ECS half of the step runner. One task definition serves every ECS step: a step's
 * `resources` (cpu, memoryMb, ephemeralStorageMb) become task-size overrides of its RunTask call, so
 * one image and one set of grants cover steps of any Fargate size. The task role holds exactly the
 * Lambda step runner's data grants plus `states:SendTask*` on the environment's state machines
 * (granted by `PipelineStateMachines`); the execution role pulls the image and writes the logs.
 *
 * @example
 * const ecsRunner = new EcsRunner(runner, 'EcsRunner', {
 *   stacklineStack: 'dev', tablePrefix: 'stackline-dev', containerDirectory: 'cdk.out/stackline-bundles/dev/container',
 *   environment: runner.stepRunnerEnvironment, dataStatements: runner.dataStatements, storeObjectsArn: runner.storeObjectsArn,
 * });
 */
export class EcsRunner extends Construct {
  readonly vpc: ec2.IVpc;
  readonly cluster: ecs.Cluster;
  readonly taskDefinition: ecs.FargateTaskDefinition;
  readonly taskRole: iam.Role;
  readonly executionRole: iam.Role;
  readonly securityGroup: ec2.SecurityGroup;
  readonly logGroup: logs.LogGroup;
  /** The container as a platform-event publisher (the same variable and grant as the Lambda step runner). */
  readonly eventPublisher: EventPublisher;
  /** What the compiler needs (`compileToAsl` `options.ecs`); CloudFormation references until deployed. */
  readonly settings: EcsRunnerOptions;

  constructor(scope: Construct, id: string, props: EcsRunnerProps) {
    super(scope, id);
    const stack = Stack.of(this);

    let subnetIds: string[];
    if (props.vpc) {
      this.vpc = ec2.Vpc.fromVpcAttributes(this, 'Vpc', {
        vpcId: props.vpc.vpcId,
        availabilityZones: props.vpc.availabilityZones,
        privateSubnetIds: props.vpc.subnetIds,
      });
      subnetIds = [...props.vpc.subnetIds];
    } else {
      const flowLogs = new logs.LogGroup(this, 'FlowLogs', {
        retention: logs.RetentionDays.ONE_MONTH,
        removalPolicy: RemovalPolicy.DESTROY,
      });
      const vpc = new ec2.Vpc(this, 'Vpc', {
        maxAzs: 2,
        // One NAT gateway for ECR, CloudWatch Logs and Step Functions; S3 and DynamoDB traffic
        // (the artifacts and metadata) goes through the free gateway endpoints instead.
        natGateways: 1,
        subnetConfiguration: [
          { name: 'Public', subnetType: ec2.SubnetType.PUBLIC, cidrMask: 24 },
          { name: 'Tasks', subnetType: ec2.SubnetType.PRIVATE_WITH_EGRESS, cidrMask: 22 },
        ],
        gatewayEndpoints: {
          S3: { service: ec2.GatewayVpcEndpointAwsService.S3 },
          DynamoDB: { service: ec2.GatewayVpcEndpointAwsService.DYNAMODB },
        },
        flowLogs: { All: { destination: ec2.FlowLogDestination.toCloudWatchLogs(flowLogs) } },
      });
      this.vpc = vpc;
      subnetIds = vpc.privateSubnets.map((subnet) => subnet.subnetId);
    }
    this.securityGroup = new ec2.SecurityGroup(this, 'TaskSecurityGroup', {
      vpc: this.vpc,
      description: `Stackline step-runner tasks (${props.stacklineStack}): no inbound traffic`,
      allowAllOutbound: true,
    });

    this.cluster = new ecs.Cluster(this, 'Cluster', {
      vpc: this.vpc,
      containerInsightsV2: ecs.ContainerInsights.ENABLED,
    });

    this.logGroup = new logs.LogGroup(this, 'Logs', {
      logGroupName: `/stackline/${props.tablePrefix}/ecs-step-runner`,
      retention: logs.RetentionDays.ONE_MONTH,
      removalPolicy: RemovalPolicy.DESTROY,
    });
    this.taskRole = new iam.Role(this, 'TaskRole', {
      // Named, so the API stack can grant it the promotion routes and recognise it as a runner (like the Lambda's role).
      roleName: ecsTaskRoleName(props.tablePrefix),
      assumedBy: new iam.ServicePrincipal('ecs-tasks.amazonaws.com', {
        conditions: { StringEquals: { 'aws:SourceAccount': stack.account } },
      }),
      description: `Stackline step runner on ECS (${props.stacklineStack}): the stores, and its task tokens`,
    });
    for (const statement of props.dataStatements) this.taskRole.addToPolicy(statement.copy());
    acknowledgeWildcardResource(
      this.taskRole,
      props.storeObjectsArn,
      'The artifact store writes content-addressed keys (<prefix>/blobs/<hash>, <prefix>/tmp/<uuid>, <prefix>/runs/<run>/...) that cannot be listed in advance; access is limited to its prefix.',
    );
    this.executionRole = new iam.Role(this, 'ExecutionRole', {
      assumedBy: new iam.ServicePrincipal('ecs-tasks.amazonaws.com', {
        conditions: { StringEquals: { 'aws:SourceAccount': stack.account } },
      }),
      description: `Pulls the Stackline step-runner image and writes its logs (${props.stacklineStack})`,
    });

    this.taskDefinition = new ecs.FargateTaskDefinition(this, 'TaskDefinition', {
      family: `${props.tablePrefix}-step-runner`,
      cpu: props.cpu ?? 1024,
      memoryLimitMiB: props.memoryMb ?? 2048,
      runtimePlatform: {
        cpuArchitecture: ecs.CpuArchitecture.ARM64,
        operatingSystemFamily: ecs.OperatingSystemFamily.LINUX,
      },
      taskRole: this.taskRole,
      executionRole: this.executionRole,
      // The root file system is read-only; downloads and materialized artifacts go to /tmp.
      volumes: [{ name: 'tmp' }],
    });
    const container = this.taskDefinition.addContainer('StepRunner', {
      containerName: STEP_RUNNER_CONTAINER,
      // Built by `cdk deploy` (Docker) from the bundle `stackline bundle` writes; arm64 like the Lambda.
      image: ecs.ContainerImage.fromAsset(props.containerDirectory, { platform: Platform.LINUX_ARM64 }),
      essential: true,
      readonlyRootFilesystem: true,
      logging: ecs.LogDrivers.awsLogs({ streamPrefix: 'task', logGroup: this.logGroup }),
      environment: { ...props.environment, AWS_REGION: stack.region },
    });
    container.addMountPoints({ containerPath: '/tmp', sourceVolume: 'tmp', readOnly: false });
    this.eventPublisher = {
      addEnvironment: (name, value) => container.addEnvironment(name, value),
      addToRolePolicy: (statement) => this.taskRole.addToPolicy(statement),
    };
    acknowledgeRule(
      this.taskDefinition,
      'ECS2',
      'The environment holds names only (stack, bucket, table prefix, KMS key ARN), no secrets: the task role grants the access.',
    );
    acknowledgeWildcardResource(
      this.executionRole,
      '*',
      'ecr:GetAuthorizationToken has no resource-level permissions; pulls are limited to the asset repository.',
    );

    this.settings = {
      clusterArn: this.cluster.clusterArn,
      taskDefinitionArn: this.taskDefinition.taskDefinitionArn,
      containerName: STEP_RUNNER_CONTAINER,
      subnets: subnetIds,
      securityGroups: [this.securityGroup.securityGroupId],
    };

    new CfnOutput(this, 'ClusterArn', { value: this.cluster.clusterArn, description: 'ECS cluster of ECS steps' });
    new CfnOutput(this, 'TaskDefinitionArn', {
      value: this.taskDefinition.taskDefinitionArn,
      description: 'Step-runner task definition (ECS steps)',
    });
    new CfnOutput(this, 'ContainerName', { value: STEP_RUNNER_CONTAINER, description: 'Step-runner container' });
    new CfnOutput(this, 'Subnets', { value: subnetIds.join(','), description: 'Subnets of ECS step tasks' });
    new CfnOutput(this, 'SecurityGroup', {
      value: this.securityGroup.securityGroupId,
      description: 'Security group of ECS step tasks',
    });
  }

  /** The `stack register` options that record {@link settings} on the registered stack (`RegisterCommand`). */
  registerCommandOptions(): string[] {
    const { clusterArn, taskDefinitionArn, containerName, subnets, securityGroups = [] } = this.settings;
    return [
      `--ecs-cluster-arn ${clusterArn}`,
      `--ecs-task-definition-arn ${taskDefinitionArn}`,
      `--ecs-container-name ${containerName}`,
      `--ecs-subnets ${subnets.join(',')}`,
      `--ecs-security-groups ${securityGroups.join(',')}`,
    ];
  }

  /**
   * What a state machine running ECS steps needs (the set `stepfunctions-tasks` `EcsRunTask` grants
   * for `WAIT_FOR_TASK_TOKEN`, without `ecs:StopTask`/`ecs:DescribeTasks`, which only `.sync` calls):
   * `ecs:RunTask` on the task definition, `iam:PassRole` on its two roles, to ECS only.
   */
  grantRunTask(role: iam.IRole): void {
    role.addToPrincipalPolicy(
      new iam.PolicyStatement({
        actions: ['ecs:RunTask'],
        resources: [this.taskDefinition.taskDefinitionArn],
        conditions: { ArnEquals: { 'ecs:cluster': this.cluster.clusterArn } },
      }),
    );
    role.addToPrincipalPolicy(
      new iam.PolicyStatement({
        actions: ['iam:PassRole'],
        resources: [this.taskRole.roleArn, this.executionRole.roleArn],
        conditions: { StringEquals: { 'iam:PassedToService': 'ecs-tasks.amazonaws.com' } },
      }),
    );
  }

  /** Lets the task report on task tokens of `stateMachineName` (SendTaskSuccess, Failure, Heartbeat). */
  grantTaskResponse(stateMachineName: string): void {
    const stack = Stack.of(this);
    this.taskRole.addToPolicy(
      new iam.PolicyStatement({
        actions: ['states:SendTaskFailure', 'states:SendTaskHeartbeat', 'states:SendTaskSuccess'],
        resources: [
          Arn.format(
            {
              service: 'states',
              resource: 'stateMachine',
              resourceName: stateMachineName,
              arnFormat: ArnFormat.COLON_RESOURCE_NAME,
            },
            stack,
          ),
        ],
      }),
    );
  }
}
