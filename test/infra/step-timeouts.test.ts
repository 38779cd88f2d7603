import { App, Stack } from 'aws-cdk-lib';
import { Template } from 'aws-cdk-lib/assertions';
import * as lambda from 'aws-cdk-lib/aws-lambda';
import { describe, expect, it } from 'vitest';
import { z } from 'zod';
import { PipelineStateMachines } from '../../infra/pipeline-state-machines.ts';
import { pipeline, step } from '../../lib/index.ts';

const timed = (timeoutMs: number) =>
  pipeline({ name: `timed_${timeoutMs}` }, () => {
    step({ name: 'timed', outputs: { x: z.number() }, timeoutMs }, () => ({ x: 1 }))();
  });

function synth(timeoutMs: number, functionTimeoutSeconds: number) {
  const stack = new Stack(new App(), 'Runner', { env: { account: '123456789012', region: 'eu-west-1' } });
  const stepRunner = new lambda.Function(stack, 'StepRunner', {
    runtime: lambda.Runtime.NODEJS_22_X,
    handler: 'index.handler',
    code: lambda.Code.fromInline('exports.handler = async () => ({})'),
  });
  new PipelineStateMachines(stack, 'Pipelines', {
    pipelines: [timed(timeoutMs)],
    stepRunner,
    stepRunnerName: 'stackline-dev-step-runner',
    stepRunnerTimeoutSeconds: functionTimeoutSeconds,
    stateMachinePrefix: 'stackline-dev-',
    bucketName: 'bucket',
    artifactPrefix: 'stackline',
  });
  return Template.fromStack(stack);
}

describe("the deployed function's timeout in the compiled state machines", () => {
  it("gives a Lambda step's Task the function's timeout", () => {
    const [machine] = Object.values(synth(60_000, 120).findResources('AWS::StepFunctions::StateMachine'));
    const definition = JSON.parse(machine!.Properties.DefinitionString);
    expect(definition.States.Step_timed.TimeoutSeconds).toBe(120);
  });

  it('fails synthesis when a step timeout does not fit in the function timeout minus the early answer', () => {
    expect(() => synth(116_000, 120)).toThrow(
      /step "timed" has timeoutMs 116000 \(116 s\), but the step runner Lambda stops after 120 s and answers 5000 ms before that: use timeoutMs ≤ 115000/,
    );
  });
});
