/**
 * The pipelines of an environment as CDK-owned state machines: compiled at synth time from the
 * same `compileToAsl` the CLI uses, deployed with logging, tracing, a published version and the
 * `live` alias runs start on, each with a role granting exactly what its definition calls.
 */
import { Arn, ArnFormat, CfnOutput, RemovalPolicy, Stack, Tags } from 'aws-cdk-lib';
import * as iam from 'aws-cdk-lib/aws-iam';
import type * as kms from 'aws-cdk-lib/aws-kms';
import type * as lambda from 'aws-cdk-lib/aws-lambda';
import * as logs from 'aws-cdk-lib/aws-logs';
import * as sfn from 'aws-cdk-lib/aws-stepfunctions';
import { Construct } from 'constructs';
import { compileToAsl } from '../lib/compiler/compile-to-asl.ts';
import type { PipelineDefinition } from '../lib/dsl/pipeline.ts';
import {
  DEFINITION_HASH_TAG,
  DEPLOYED_ALIAS,
  PIPELINE_TAG,
  pipelineDefinitionHash,
  stateMachineName,
} from '../lib/orchestrators/deployed-pipelines.ts';
import type { EcsRunner } from './ecs-runner.ts';
import { acknowledgeWildcardResource } from './nag.ts';

/** Props of {@link PipelineStateMachines}. */
export interface PipelineStateMachinesProps {
  /** Every pipeline the environment serves (unique names). */
  pipelines: readonly PipelineDefinition[];
  /** The step runner every Task state invokes (by name, unqualified). */
  stepRunner: lambda.IFunction;
  /** Its name as a plain string: it is part of the compiled definition. */
  stepRunnerName: string;
  /** Its timeout (default 900): Lambda steps' `timeoutMs` must fit in it, and their Tasks wait for it. */
  stepRunnerTimeoutSeconds?: number;
  /** State machines are `<prefix><pipeline>`. */
  stateMachinePrefix: string;
  /** The artifact bucket and the store's key prefix: Distributed Maps read item lists under `<prefix>/runs/`. */
  bucketName: string;
  artifactPrefix: string;
  encryptionKey?: kms.IKey;
  /** Same as the runner's `STACKLINE_DISTRIBUTED_MAP_THRESHOLD` (default: the compiler's). */
  distributedMapThreshold?: number;
  /** Where `runner: 'ecs'` steps run; required when a pipeline has one. */
  ecsRunner?: EcsRunner;
}

/** One deployed pipeline. */
export interface DeployedPipeline {
  pipeline: PipelineDefinition;
  stateMachine: sfn.StateMachine;
  alias: sfn.CfnStateMachineAlias;
  role: iam.Role;
  /** {@link pipelineDefinitionHash}: also the state machine's `stackline:definition-sha256` tag. */
  definitionHash: string;
}

/**
 * A state machine per pipeline, compiled at synthesis.
 *
 * @example
 * new PipelineStateMachines(runner, 'Pipelines', {
 *   pipelines: [training, inference], stepRunner: runner.function, stepRunnerName: 'stackline-dev-step-runner',
 *   stateMachinePrefix: 'stackline-dev-', bucketName, artifactPrefix: 'stackline',
 * });
 */
export class PipelineStateMachines extends Construct {
  readonly deployed: DeployedPipeline[];

  constructor(scope: Construct, id: string, props: PipelineStateMachinesProps) {
    super(scope, id);
    const stack = Stack.of(this);
    const artifactPrefix = props.artifactPrefix.replace(/^\/+|\/+$/g, '');
    const bucketArn = Arn.format({ service: 's3', region: '', account: '', resource: props.bucketName }, stack);
    const mapItems = `${bucketArn}/${artifactPrefix ? `${artifactPrefix}/` : ''}runs/*`;

    this.deployed = props.pipelines.map((pipeline) => {
      const name = stateMachineName(pipeline.name, props.stateMachinePrefix);
      const compiled = compileToAsl(pipeline, {
        lambdaFunctionArn: props.stepRunnerName,
        ...(props.stepRunnerTimeoutSeconds === undefined
          ? {}
          : { lambdaTimeoutSeconds: props.stepRunnerTimeoutSeconds }),
        ...(props.distributedMapThreshold === undefined
          ? {}
          : { distributedMapThreshold: props.distributedMapThreshold }),
        ...(props.ecsRunner ? { ecs: props.ecsRunner.settings } : {}),
      });
      const scopeId = constructId(pipeline.name);
      const role = new iam.Role(this, `${scopeId}Role`, {
        assumedBy: new iam.ServicePrincipal('states.amazonaws.com', {
          conditions: { StringEquals: { 'aws:SourceAccount': stack.account } },
        }),
        description: `Step Functions role of the Stackline pipeline ${pipeline.name} (${name})`,
      });
      // Every Task state invokes the runner by name (unqualified).
      role.addToPolicy(
        new iam.PolicyStatement({ actions: ['lambda:InvokeFunction'], resources: [props.stepRunner.functionArn] }),
      );
      if (props.ecsRunner && usesEcs(compiled.json)) {
        props.ecsRunner.grantRunTask(role);
        props.ecsRunner.grantTaskResponse(name);
      }
      if (usesDistributedMap(compiled.json)) {
        const selfArn = Arn.format(
          { service: 'states', resource: 'stateMachine', resourceName: name, arnFormat: ArnFormat.COLON_RESOURCE_NAME },
          stack,
        );
        const executions = Arn.format(
          {
            service: 'states',
            resource: 'execution',
            resourceName: `${name}/*`,
            arnFormat: ArnFormat.COLON_RESOURCE_NAME,
          },
          stack,
        );
        role.addToPolicy(new iam.PolicyStatement({ actions: ['s3:GetObject'], resources: [mapItems] }));
        role.addToPolicy(new iam.PolicyStatement({ actions: ['states:StartExecution'], resources: [selfArn] }));
        role.addToPolicy(
          new iam.PolicyStatement({
            actions: ['states:DescribeExecution', 'states:StopExecution'],
            resources: [executions],
          }),
        );
        if (props.encryptionKey) {
          role.addToPolicy(
            new iam.PolicyStatement({ actions: ['kms:Decrypt'], resources: [props.encryptionKey.keyArn] }),
          );
        }
        acknowledgeWildcardResource(
          role,
          mapItems,
          'Distributed Map reads item lists at keys the runner chooses per run (<prefix>/runs/<run>/<step>/items.json).',
        );
        acknowledgeWildcardResource(role, executions, 'Distributed Map child executions have run-specific names.');
      }

      const logGroup = new logs.LogGroup(this, `${scopeId}Logs`, {
        logGroupName: `/aws/vendedlogs/states/${name}`,
        retention: logs.RetentionDays.ONE_MONTH,
        removalPolicy: RemovalPolicy.DESTROY,
      });
      const stateMachine = new sfn.StateMachine(this, scopeId, {
        stateMachineName: name,
        definitionBody: sfn.DefinitionBody.fromString(compiled.json),
        role,
        stateMachineType: sfn.StateMachineType.STANDARD,
        tracingEnabled: true,
        // Execution data holds only run ids and parameters; ALL events so every transition is visible.
        logs: { destination: logGroup, level: sfn.LogLevel.ALL, includeExecutionData: true },
      });
      const definitionHash = pipelineDefinitionHash(pipeline);
      Tags.of(stateMachine).add(DEFINITION_HASH_TAG, definitionHash);
      Tags.of(stateMachine).add(PIPELINE_TAG, pipeline.name);
      // CloudWatch Logs delivery and X-Ray have no resource-level permissions.
      acknowledgeWildcardResource(role, '*', 'CloudWatch Logs vended delivery and X-Ray tracing support only "*".');

      // A new version is published whenever the definition or role changes (the revision id does).
      const version = new sfn.CfnStateMachineVersion(this, `${scopeId}Version`, {
        stateMachineArn: stateMachine.stateMachineArn,
        stateMachineRevisionId: stateMachine.stateMachineRevisionId,
        description: `definition ${definitionHash}`,
      });
      const alias = new sfn.CfnStateMachineAlias(this, `${scopeId}Alias`, {
        name: DEPLOYED_ALIAS,
        description: `Runs of ${pipeline.name} start here`,
        routingConfiguration: [{ stateMachineVersionArn: version.attrArn, weight: 100 }],
      });
      new CfnOutput(this, `${scopeId}AliasArn`, {
        value: alias.attrArn,
        description: `Pipeline ${pipeline.name}: runs start on this alias`,
      });
      return { pipeline, stateMachine, alias, role, definitionHash };
    });
  }
}

/** A Distributed Map (its item reader and child executions) needs more than the runner's invoke. */
function usesDistributedMap(definitionJson: string): boolean {
  return definitionJson.includes('"Mode":"DISTRIBUTED"');
}

/** ECS Task states start tasks with the environment's roles and report on their task tokens. */
function usesEcs(definitionJson: string): boolean {
  return definitionJson.includes('"Resource":"arn:aws:states:::ecs:runTask');
}

/** Pipeline names are snake_case; construct ids and output names must be alphanumeric. */
export function constructId(pipelineName: string): string {
  return pipelineName
    .split(/[^A-Za-z0-9]+/)
    .filter(Boolean)
    .map((part) => part[0]!.toUpperCase() + part.slice(1))
    .join('');
}
