import {
  CloudFormationClient,
  CreateStackCommand,
  DescribeStacksCommand,
  waitUntilStackCreateComplete,
} from '@aws-sdk/client-cloudformation';
import {
  DescribeExecutionCommand,
  GetExecutionHistoryCommand,
  ListTagsForResourceCommand,
  SFNClient,
  StartExecutionCommand,
} from '@aws-sdk/client-sfn';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { awsTestClientConfig, type MotoServer, startMoto } from '../support/moto.ts';

// moto_ext's deployment patches (test/emulator/moto_ext/README.md), against real SDK v3 clients.
// `MOTO_EXT_SKIP=sfn_deployed npx vitest run test/integration/moto-extension-deploy.test.ts` shows
// what plain moto 5.2.1 does.

let moto: MotoServer;
let cfn: CloudFormationClient;
let sfn: SFNClient;

beforeAll(async () => {
  moto = await startMoto({ stepFunctionsExecution: true });
  cfn = new CloudFormationClient(awsTestClientConfig(moto.endpoint));
  sfn = new SFNClient(awsTestClientConfig(moto.endpoint));
}, 60_000);

afterAll(async () => {
  cfn?.destroy();
  sfn?.destroy();
  await moto?.stop();
});

async function waitForExecution(executionArn: string) {
  for (;;) {
    const execution = await sfn.send(new DescribeExecutionCommand({ executionArn }));
    if (execution.status !== 'RUNNING') return execution;
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
}

function definition(result: string) {
  return JSON.stringify({
    StartAt: 'Answer',
    States: {
      Answer: { Type: 'Pass', Result: result, ResultPath: '$.answer', Next: 'Check' },
      Check: {
        Type: 'Choice',
        Choices: [{ Variable: '$.fail', IsPresent: true, Next: 'Fail' }],
        Default: 'Done',
      },
      Fail: { Type: 'Fail', Error: 'Deployed.Failure', Cause: `from ${result}` },
      Done: { Type: 'Succeed' },
    },
  });
}

describe('moto_ext sfn_deployed: CloudFormation-deployed state machines, versions and aliases run', () => {
  it('creates the state machine where executions run, publishes a version, routes an alias, and starts on it', async () => {
    const template = {
      Resources: {
        Machine: {
          Type: 'AWS::StepFunctions::StateMachine',
          Properties: {
            StateMachineName: 'deployed-machine',
            DefinitionString: definition('v1'),
            RoleArn: 'arn:aws:iam::123456789012:role/sfn',
            Tags: [{ Key: 'stackline:definition-sha256', Value: 'abc' }],
          },
        },
        Version: {
          Type: 'AWS::StepFunctions::StateMachineVersion',
          Properties: {
            StateMachineArn: { Ref: 'Machine' },
            StateMachineRevisionId: { 'Fn::GetAtt': ['Machine', 'StateMachineRevisionId'] },
          },
        },
        Alias: {
          Type: 'AWS::StepFunctions::StateMachineAlias',
          Properties: {
            Name: 'live',
            RoutingConfiguration: [{ StateMachineVersionArn: { Ref: 'Version' }, Weight: 100 }],
          },
        },
      },
      Outputs: {
        AliasArn: { Value: { Ref: 'Alias' } },
        VersionArn: { Value: { 'Fn::GetAtt': ['Version', 'Arn'] } },
      },
    };
    await cfn.send(new CreateStackCommand({ StackName: 'deployed', TemplateBody: JSON.stringify(template) }));
    await waitUntilStackCreateComplete({ client: cfn, maxWaitTime: 60, minDelay: 1 }, { StackName: 'deployed' });
    const { Stacks } = await cfn.send(new DescribeStacksCommand({ StackName: 'deployed' }));
    const outputs = Object.fromEntries((Stacks?.[0]?.Outputs ?? []).map((o) => [o.OutputKey, o.OutputValue]));
    const machineArn = 'arn:aws:states:us-east-1:123456789012:stateMachine:deployed-machine';
    expect(outputs).toEqual({ AliasArn: `${machineArn}:live`, VersionArn: `${machineArn}:1` });

    const tags = await sfn.send(new ListTagsForResourceCommand({ resourceArn: machineArn }));
    expect(tags.tags).toEqual([{ key: 'stackline:definition-sha256', value: 'abc' }]);

    const succeeded = await sfn.send(
      new StartExecutionCommand({ stateMachineArn: `${machineArn}:live`, name: 'via-alias', input: '{}' }),
    );
    expect(succeeded.executionArn).toBe('arn:aws:states:us-east-1:123456789012:execution:deployed-machine:via-alias');
    const done = await waitForExecution(succeeded.executionArn!);
    expect(done.status).toBe('SUCCEEDED');
    expect(JSON.parse(done.output!)).toEqual({ answer: 'v1' });

    const failed = await sfn.send(
      new StartExecutionCommand({ stateMachineArn: `${machineArn}:1`, name: 'via-version', input: '{"fail":true}' }),
    );
    expect((await waitForExecution(failed.executionArn!)).status).toBe('FAILED');
    const history = await sfn.send(new GetExecutionHistoryCommand({ executionArn: failed.executionArn! }));
    expect(history.events?.at(-1)?.executionFailedEventDetails).toEqual({
      error: 'Deployed.Failure',
      cause: 'from v1',
    });
  }, 60_000);
});
