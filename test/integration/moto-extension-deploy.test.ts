import {
  CloudFormationClient,
  CreateChangeSetCommand,
  CreateStackCommand,
  DescribeChangeSetCommand,
  DescribeStacksCommand,
  ExecuteChangeSetCommand,
  UpdateTerminationProtectionCommand,
  waitUntilStackCreateComplete,
} from '@aws-sdk/client-cloudformation';
import { CreateBucketCommand, PutObjectCommand, S3Client } from '@aws-sdk/client-s3';
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
// what plain moto 5.2.1 does (likewise MOTO_EXT_SKIP=cfn_cdk_deploy).

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

/** moto's SSM speaks the JSON protocol; there is no SSM client in the project. */
async function putSsmParameter(name: string, value: string) {
  const response = await fetch(moto.endpoint, {
    method: 'POST',
    headers: {
      'content-type': 'application/x-amz-json-1.1',
      'x-amz-target': 'AmazonSSM.PutParameter',
      authorization:
        'AWS4-HMAC-SHA256 Credential=test/20250101/us-east-1/ssm/aws4_request, SignedHeaders=host, Signature=0',
    },
    body: JSON.stringify({ Name: name, Value: value, Type: 'String', Overwrite: true }),
  });
  if (!response.ok) throw new Error(`PutParameter failed: HTTP ${response.status} ${await response.text()}`);
}

describe('moto_ext cfn_cdk_deploy: what the CDK CLI needs from CloudFormation', () => {
  it('deploys through change sets the way cdk deploy does: IP template URL, outputs, lookups, previous values', async () => {
    const s3 = new S3Client(awsTestClientConfig(moto.endpoint));
    const StackName = 'cdk-like';
    const template = (outputs: Record<string, unknown>) => ({
      Parameters: {
        BootstrapVersion: { Type: 'AWS::SSM::Parameter::Value<String>', Default: '/cdk-bootstrap/version' },
      },
      Resources: { Queue: { Type: 'AWS::SQS::Queue', Properties: { QueueName: 'cdk-like-queue' } } },
      Outputs: { Version: { Value: { Ref: 'BootstrapVersion' } }, ...outputs },
    });
    const outputsOf = async () =>
      Object.fromEntries(
        ((await cfn.send(new DescribeStacksCommand({ StackName }))).Stacks?.[0]?.Outputs ?? []).map((o) => [
          o.OutputKey,
          o.OutputValue,
        ]),
      );
    try {
      await putSsmParameter('/cdk-bootstrap/version', '30');
      await s3.send(new CreateBucketCommand({ Bucket: 'cdk-like-assets' }));
      await s3.send(
        new PutObjectCommand({ Bucket: 'cdk-like-assets', Key: 'v1.json', Body: JSON.stringify(template({})) }),
      );
      // 1. The CLI's template URL has an IP host (path-style).
      await cfn.send(
        new CreateChangeSetCommand({
          StackName,
          ChangeSetName: 'cdk-deploy-change-set',
          ChangeSetType: 'CREATE',
          TemplateURL: `${moto.endpoint}/cdk-like-assets/v1.json`,
          Parameters: [{ ParameterKey: 'BootstrapVersion', ParameterValue: '/cdk-bootstrap/version' }],
        }),
      );
      const described = await cfn.send(
        new DescribeChangeSetCommand({ StackName, ChangeSetName: 'cdk-deploy-change-set' }),
      );
      expect(described.Status).toBe('CREATE_COMPLETE');
      await cfn.send(new ExecuteChangeSetCommand({ StackName, ChangeSetName: 'cdk-deploy-change-set' }));
      // 2. Outputs of the template the CREATE change set applied.
      expect(await outputsOf()).toEqual({ Version: '30' });

      // 3. A change set that does not exist (in this stack) is ChangeSetNotFound.
      await expect(
        cfn.send(new DescribeChangeSetCommand({ StackName, ChangeSetName: 'no-such-change-set' })),
      ).rejects.toMatchObject({ name: expect.stringMatching(/^ChangeSetNotFound/) });

      // 4. An update passing BootstrapVersion with UsePreviousValue re-reads the SSM parameter by name.
      await putSsmParameter('/cdk-bootstrap/version', '31');
      await cfn.send(
        new CreateChangeSetCommand({
          StackName,
          ChangeSetName: 'cdk-deploy-change-set',
          ChangeSetType: 'UPDATE',
          TemplateBody: JSON.stringify(template({ Extra: { Value: 'added' } })),
          Parameters: [{ ParameterKey: 'BootstrapVersion', UsePreviousValue: true }],
        }),
      );
      await cfn.send(new ExecuteChangeSetCommand({ StackName, ChangeSetName: 'cdk-deploy-change-set' }));
      expect(await outputsOf()).toEqual({ Version: '31', Extra: 'added' });

      // 5. Termination protection.
      await cfn.send(new UpdateTerminationProtectionCommand({ StackName, EnableTerminationProtection: true }));
      expect((await cfn.send(new DescribeStacksCommand({ StackName }))).Stacks?.[0]?.EnableTerminationProtection).toBe(
        true,
      );
    } finally {
      s3.destroy();
    }
  }, 60_000);
});
