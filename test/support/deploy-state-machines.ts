import { CreateStateMachineAliasCommand, CreateStateMachineCommand, SFNClient } from '@aws-sdk/client-sfn';
import { compileToAsl } from '../../lib/compiler/compile-to-asl.ts';
import type { PipelineDefinition } from '../../lib/dsl/pipeline.ts';
import {
  DEFINITION_HASH_TAG,
  DEPLOYED_ALIAS,
  PIPELINE_TAG,
  pipelineDefinitionHash,
  stateMachineName,
} from '../../lib/orchestrators/deployed-pipelines.ts';
import { awsTestClientConfig } from './moto.ts';

/**
 * Deploys pipelines' state machines through the Step Functions API the way the CDK app's
 * `PipelineStateMachines` construct does (same name, tags, published version and `live` alias), for
 * tests that exercise `stackline run --stack` without a CloudFormation deploy. The deploy tier
 * (test/deploy/) checks the CDK path itself.
 */
export async function deployStateMachines(
  endpoint: string,
  pipelines: PipelineDefinition[],
  options: { functionName: string; roleArn: string; prefix?: string },
): Promise<void> {
  const sfn = new SFNClient(awsTestClientConfig(endpoint));
  try {
    for (const pipeline of pipelines) {
      const { json } = compileToAsl(pipeline, { lambdaFunctionArn: options.functionName });
      const created = await sfn.send(
        new CreateStateMachineCommand({
          name: stateMachineName(pipeline.name, options.prefix),
          definition: json,
          roleArn: options.roleArn,
          publish: true,
          tags: [
            { key: DEFINITION_HASH_TAG, value: pipelineDefinitionHash(pipeline) },
            { key: PIPELINE_TAG, value: pipeline.name },
          ],
        }),
      );
      await sfn.send(
        new CreateStateMachineAliasCommand({
          name: DEPLOYED_ALIAS,
          routingConfiguration: [{ stateMachineVersionArn: created.stateMachineVersionArn!, weight: 100 }],
        }),
      );
    }
  } finally {
    sfn.destroy();
  }
}
