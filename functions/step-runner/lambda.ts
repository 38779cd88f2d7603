/**
 * The step runner as a Lambda function: the entry `stackline bundle` generates is
 * `export const handler = createLambdaHandler(pipelineModule)`. All logic lives in
 * `lib/runtime/step-runner.ts`; this file only adapts the Lambda invocation to it.
 */
import middy, { type MiddlewareObj } from '@middy/core';
import { awsStepRunnerDeps } from '../../lib/runtime/aws-step-runner-config.ts';
import {
  handleStepRunnerRequest,
  type ParsedStepRunnerRequest,
  parseStepRunnerRequest,
  pipelinesOfModule,
  type StepRunnerDeps,
  toStepFunctionsError,
} from '../../lib/runtime/step-runner.ts';

/** Validates the event against the step runner protocol; a bad event fails as `NonRetriableError`. */
function validateStepRunnerRequest(): MiddlewareObj<unknown> {
  return {
    name: 'validateStepRunnerRequest',
    before: (request) => {
      request.event = parseStepRunnerRequest(request.event);
    },
  };
}

/**
 * The Lambda handler for a pipeline module. The module's pipelines are read now (cold start); the
 * stores are made from the environment at the first invocation (`resolveDeps`, replaceable in tests).
 * A thrown error's `name` becomes the invocation's `errorType`, which the state machine's Retry
 * and Catch fields match (see `toStepFunctionsError`).
 *
 * @example
 * import * as pipelineModule from './training.ts';
 * export const handler = createLambdaHandler(pipelineModule);
 */
export function createLambdaHandler(
  pipelineModule: Record<string, unknown>,
  resolveDeps: (pipelines: ReturnType<typeof pipelinesOfModule>) => StepRunnerDeps = awsStepRunnerDeps,
) {
  const pipelines = pipelinesOfModule(pipelineModule);
  return middy<unknown, unknown>()
    .use(validateStepRunnerRequest())
    .handler(async (event, context) => {
      try {
        // The step run's in-progress lease ends with this invocation: a retry after a lost
        // invocation takes over then, and a duplicate delivered meanwhile waits for it.
        const remaining =
          typeof context?.getRemainingTimeInMillis === 'function' ? context.getRemainingTimeInMillis() : undefined;
        return await handleStepRunnerRequest(event as ParsedStepRunnerRequest, resolveDeps(pipelines), {
          executor: 'lambda',
          ...(remaining === undefined ? {} : { deadlineMs: Date.now() + remaining }),
        });
      } catch (error) {
        throw toStepFunctionsError(error);
      }
    });
}
