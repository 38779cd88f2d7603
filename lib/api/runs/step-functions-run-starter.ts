import { type SFNClient, StartExecutionCommand } from '@aws-sdk/client-sfn';
import { DEPLOYED_ALIAS } from '../../orchestrators/deployed-pipelines.ts';
import { newId } from '../../util/ids.ts';
import type { RunStarter, StartRunRequest } from '../context.ts';
import { assertSameDefinition, assertServedStack, unknownPipeline } from './run-starter-rules.ts';

/** Options of {@link StepFunctionsRunStarter}. */
export interface StepFunctionsRunStarterOptions {
  sfn: SFNClient;
  /** The stack the environment is (`STACKLINE_STACK`). */
  stack: string;
  /** `arn:aws:states:<region>:<account>:stateMachine:<prefix>`: a pipeline's state machine is this + its name. */
  stateMachineArnPrefix: string;
  /** Deployed pipelines by name, with their definition's sha256 (`pipelineDefinitionHash`, computed at synth). */
  deployed: Readonly<Record<string, string>>;
}

/**
 * `POST /runs` on AWS: StartExecution on the deployed state machine's `live` alias, named after a new
 * run id the step runner then records the run under. The API knows the deployed pipelines and their
 * definition hashes from its environment (set at synth), so the only Step Functions permission it
 * needs is `states:StartExecution` on those aliases: no ListStateMachines, no tag reads.
 */
export class StepFunctionsRunStarter implements RunStarter {
  constructor(private readonly options: StepFunctionsRunStarterOptions) {}

  async start(
    request: StartRunRequest,
    trigger: { actor: string; tags: string[] },
  ): Promise<{ runId: string; executionArn: string }> {
    const { stack, deployed, sfn, stateMachineArnPrefix } = this.options;
    assertServedStack(request, stack);
    const served =
      deployed[request.pipeline] ??
      unknownPipeline(
        request.pipeline,
        Object.keys(deployed),
        `add its module to the environment's "pipelines" in cdk.json and deploy`,
      );
    assertSameDefinition(request, served, stack);
    const runId = newId('run');
    const { executionArn } = await sfn.send(
      new StartExecutionCommand({
        stateMachineArn: `${stateMachineArnPrefix}${request.pipeline}:${DEPLOYED_ALIAS}`,
        name: runId,
        input: JSON.stringify({
          pipeline: request.pipeline,
          parameters: request.params ?? {},
          runId,
          tags: [...(request.tags ?? []), ...trigger.tags],
          ...(request.cache === undefined ? {} : { cache: request.cache }),
        }),
      }),
    );
    return { runId, executionArn: executionArn! };
  }
}
