/**
 * The step runner as a Lambda function: the entry `stackline bundle` generates is
 * `export const handler = createLambdaHandler(pipelineModule)`. All logic lives in
 * `lib/runtime/step-runner.ts`; this file only adapts the Lambda invocation to it.
 */
import middy, { type MiddlewareObj } from '@middy/core';
import { StepTimeoutError } from '../../lib/errors.ts';
import { awsStepRunnerDeps } from '../../lib/runtime/aws-step-runner-config.ts';
import { LAMBDA_TIMEOUT_EARLY_MS } from '../../lib/runtime/liveness.ts';
import {
  handleStepRunnerRequest,
  type ParsedStepRunnerRequest,
  parseStepRunnerRequest,
  pipelinesOfModule,
  type StepRunnerDeps,
  toStepFunctionsError,
} from '../../lib/runtime/step-runner.ts';
import { deliveryFault } from '../../lib/util/fault-points.ts';

/** Validates the event against the step runner protocol; a bad event fails as `NonRetriableError`. */
function validateStepRunnerRequest(): MiddlewareObj<unknown> {
  return {
    name: 'validateStepRunnerRequest',
    before: (request) => {
      request.event = parseStepRunnerRequest(request.event);
    },
  };
}

/** How the handler stops a process in which a timed-out step may still be running. */
export interface LambdaHandlerOptions {
  /** Answer this long before the function's timeout. Default {@link LAMBDA_TIMEOUT_EARLY_MS}. */
  timeoutEarlyInMillis?: number;
  /** Ends the process (default `process.exit`). Replaced in tests. */
  exit?: (code: number) => void;
}

/** Whether `error` says an attempt (or the whole invocation) ran out of time. */
function isTimeout(error: unknown): boolean {
  for (let e = error, depth = 0; e && depth < 20; e = (e as { cause?: unknown }).cause, depth++) {
    if (e instanceof StepTimeoutError || (e as { code?: unknown }).code === 'STEP_TIMEOUT') return true;
  }
  return false;
}

/**
 * Ends the process once the error response has been sent. The Lambda runtime posts a handler's
 * result one event-loop turn after the handler settles (a `setImmediate`, then a synchronous post)
 * and only then asks for the next event: two turns later the response is out and no next
 * invocation has started, so a step still running from this one never runs beside the next.
 */
function exitAfterResponse(exit: (code: number) => void): void {
  setImmediate(() => setImmediate(() => exit(0)));
}

/**
 * The Lambda handler for a pipeline module. The module's pipelines are read now (cold start); the
 * stores are made from the environment at the first invocation (`resolveDeps`, replaceable in tests).
 * A thrown error's `name` becomes the invocation's `errorType`, which the state machine's Retry
 * and Catch fields match (see `toStepFunctionsError`).
 *
 * Timeouts are hard stops. A step that outlives its `timeoutMs`, or an invocation that reaches the
 * function's timeout minus `timeoutEarlyInMillis` (middy), is answered with a `StepTimeoutError`,
 * and the process then exits: a step that ignored its abort signal cannot keep running in a warm
 * container and write during the next invocation. The next invocation starts a fresh process.
 *
 * @example
 * import * as pipelineModule from './training.ts';
 * export const handler = createLambdaHandler(pipelineModule);
 */
export function createLambdaHandler(
  pipelineModule: Record<string, unknown>,
  resolveDeps: (pipelines: ReturnType<typeof pipelinesOfModule>) => StepRunnerDeps = awsStepRunnerDeps,
  options: LambdaHandlerOptions = {},
) {
  const pipelines = pipelinesOfModule(pipelineModule);
  const timeoutEarlyInMillis = options.timeoutEarlyInMillis ?? LAMBDA_TIMEOUT_EARLY_MS;
  const exit = options.exit ?? ((code: number) => process.exit(code));
  let exiting = false;
  const stopAfterTimeout: MiddlewareObj<unknown> = {
    name: 'stopAfterTimeout',
    // Should the process still be alive when the next event arrives, it must not serve it.
    before: () => {
      if (exiting) exit(0);
    },
    onError: (request) => {
      if (!isTimeout(request.error) || exiting) return;
      exiting = true;
      console.error(
        JSON.stringify({
          level: 'WARN',
          message: 'A step attempt timed out; the process exits after this response so it cannot keep running.',
          error: request.error?.message,
        }),
      );
      exitAfterResponse(exit);
    },
  };
  return middy<unknown, unknown>({
    timeoutEarlyInMillis,
    timeoutEarlyResponse: () => {
      throw new StepTimeoutError(
        `The step runner stopped ${timeoutEarlyInMillis} ms before the Lambda function's timeout; the step did not finish in time.`,
        { context: { timeoutEarlyInMillis } },
      );
    },
  })
    .use(stopAfterTimeout)
    .use(validateStepRunnerRequest())
    .handler(async (event, context) => {
      try {
        // The step run's in-progress lease ends with this invocation: a retry after a lost
        // invocation takes over then, and a duplicate delivered meanwhile waits for it.
        const remaining =
          typeof context?.getRemainingTimeInMillis === 'function' ? context.getRemainingTimeInMillis() : undefined;
        const request = event as ParsedStepRunnerRequest;
        const delivery = request.action === 'run-step' ? `${request.stepId}/${request.mapIndex ?? ''}` : undefined;
        if (delivery) deliveryFault(request.runId ?? '', delivery, 'before');
        const response = await handleStepRunnerRequest(request, resolveDeps(pipelines), {
          executor: 'lambda',
          ...(remaining === undefined ? {} : { deadlineMs: Date.now() + remaining }),
        });
        if (delivery) deliveryFault(request.runId ?? '', delivery, 'after');
        return response;
      } catch (error) {
        throw toStepFunctionsError(error);
      }
    });
}
