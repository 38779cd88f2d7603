/**
 * The step runner as an ECS task (steps too long or too large for Lambda). The request arrives in
 * `STACKLINE_REQUEST` (set by the state machine's container override) or as the first argument;
 * the JSON response goes to stdout, an error to stderr with exit code 1. All logic lives in
 * `lib/runtime/step-runner.ts`.
 */
import { NonRetriableError } from '../../lib/errors.ts';
import { awsStepRunnerDeps } from '../../lib/runtime/aws-step-runner-config.ts';
import {
  handleStepRunnerRequest,
  parseStepRunnerRequest,
  pipelinesOfModule,
  type StepRunnerDeps,
  toStepFunctionsError,
} from '../../lib/runtime/step-runner.ts';

/** How long an ECS step run's in-progress lease lasts (a task runs at most this long). */
export const ECS_LEASE_MS = 12 * 3600_000;

export interface EcsTaskIo {
  stdout: { write(text: string): unknown };
  stderr: { write(text: string): unknown };
  /** Where the stores come from (default: the environment, as on AWS). */
  resolveDeps?: (pipelines: ReturnType<typeof pipelinesOfModule>) => StepRunnerDeps;
}

/**
 * Runs one step runner request and returns the process exit code (0 or 1); the generated container
 * entry sets `process.exitCode` from it.
 *
 * @example
 * import * as pipelineModule from './training.ts';
 * process.exitCode = await runEcsTask(pipelineModule);
 */
export async function runEcsTask(
  pipelineModule: Record<string, unknown>,
  request: unknown = requestFromProcess(),
  io: EcsTaskIo = { stdout: process.stdout, stderr: process.stderr },
): Promise<number> {
  try {
    const pipelines = pipelinesOfModule(pipelineModule);
    const parsed = parseStepRunnerRequest(typeof request === 'string' ? parseJson(request) : request);
    const response = await handleStepRunnerRequest(parsed, (io.resolveDeps ?? awsStepRunnerDeps)(pipelines), {
      executor: 'ecs',
      // A task has no deadline of its own: its step run's lease covers the longest task we allow.
      deadlineMs: Date.now() + ECS_LEASE_MS,
    });
    io.stdout.write(`${JSON.stringify(response)}\n`);
    return 0;
  } catch (caught) {
    const error = toStepFunctionsError(caught);
    io.stderr.write(`${JSON.stringify({ errorType: error.name, errorMessage: error.message })}\n`);
    return 1;
  }
}

function parseJson(text: string): unknown {
  try {
    return JSON.parse(text);
  } catch (error) {
    throw new NonRetriableError(`The step runner request is not JSON: ${(error as Error).message}`, { cause: error });
  }
}

function requestFromProcess(): unknown {
  const raw = process.env.STACKLINE_REQUEST ?? process.argv[2];
  if (raw === undefined) return undefined; // rejected by the protocol check with a clear message
  return raw;
}
