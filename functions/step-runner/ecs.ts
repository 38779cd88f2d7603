/**
 * The step runner as an ECS task (steps too long or too large for Lambda). The request arrives in
 * `STACKLINE_REQUEST` (set by the state machine's container override) or as the first argument.
 * When the state machine passed a task token (`STACKLINE_TASK_TOKEN`, see
 * `lib/compiler/ecs-task.ts`), the outcome goes back to Step Functions: `SendTaskSuccess` with the
 * response, or `SendTaskFailure` whose error is the name the Lambda runner would report
 * (`NonRetriableError`, `StepFailedError`, a transient AWS error name…), so the state's Retry
 * fields treat it as they treat a Lambda step; heartbeats go out meanwhile. The response is also
 * printed to stdout (an error to stderr, exit code 1) for the task's logs. All step logic lives in
 * `lib/runtime/step-runner.ts`.
 */
import {
  SendTaskFailureCommand,
  SendTaskHeartbeatCommand,
  SendTaskSuccessCommand,
  SFNClient,
} from '@aws-sdk/client-sfn';
import { ECS_HEARTBEAT_INTERVAL_MS, ECS_TASK_TOKEN_ENV } from '../../lib/compiler/ecs-task.ts';
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

/** Step Functions limits: `error` up to 256 characters, `cause` up to 32,768. */
const MAX_ERROR_LENGTH = 256;
const MAX_CAUSE_LENGTH = 32_768;

/** What reports a task token's outcome: an `SFNClient` on AWS (any object with its `send`). */
export type TaskTokenClient = Pick<SFNClient, 'send'>;

export interface EcsTaskIo {
  stdout: { write(text: string): unknown };
  stderr: { write(text: string): unknown };
  /** Where the stores come from (default: the environment, as on AWS). */
  resolveDeps?: (pipelines: ReturnType<typeof pipelinesOfModule>) => StepRunnerDeps;
  /** The state's task token (default: `STACKLINE_TASK_TOKEN`); without one, nothing is reported to Step Functions. */
  taskToken?: string | undefined;
  /** Sends the token's outcome and heartbeats (default: an `SFNClient` from the environment). */
  stepFunctions?: TaskTokenClient;
  /** Default {@link ECS_HEARTBEAT_INTERVAL_MS}. */
  heartbeatIntervalMs?: number;
}

/**
 * Runs one step runner request, reports its outcome on the task token (if any) and returns the
 * process exit code (0 or 1); the generated container entry sets `process.exitCode` from it.
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
  const token = 'taskToken' in io ? io.taskToken : process.env[ECS_TASK_TOKEN_ENV] || undefined;
  const client = token === undefined ? undefined : (io.stepFunctions ?? new SFNClient({}));
  const heartbeat = client && token ? startHeartbeat(client, token, io) : undefined;
  try {
    let outcome: { response: unknown; error?: undefined } | { error: Error };
    try {
      const pipelines = pipelinesOfModule(pipelineModule);
      const parsed = parseStepRunnerRequest(typeof request === 'string' ? parseJson(request) : request);
      const response = await handleStepRunnerRequest(parsed, (io.resolveDeps ?? awsStepRunnerDeps)(pipelines), {
        executor: 'ecs',
        // A task has no deadline of its own: its step run's lease covers the longest task we allow.
        deadlineMs: Date.now() + ECS_LEASE_MS,
      });
      outcome = { response };
    } catch (caught) {
      outcome = { error: toStepFunctionsError(caught) };
    } finally {
      await heartbeat?.stop();
    }
    const { error } = outcome;
    const printed =
      error === undefined
        ? JSON.stringify(outcome.response)
        : JSON.stringify({ errorType: error.name, errorMessage: error.message });
    (error === undefined ? io.stdout : io.stderr).write(`${printed}\n`);
    if (client && token) {
      try {
        if (error === undefined) await client.send(new SendTaskSuccessCommand({ taskToken: token, output: printed }));
        else
          await client.send(
            new SendTaskFailureCommand({
              taskToken: token,
              error: error.name.slice(0, MAX_ERROR_LENGTH),
              // The JSON the Lambda runtime writes as a failed invocation's cause: the run records its message.
              cause: causeOf(error),
            }),
          );
      } catch (reportError) {
        // The state then fails when heartbeats stop (HeartbeatSeconds): say why in the task's log.
        const { name, message } = reportError as Error;
        io.stderr.write(`Could not report the step's outcome to Step Functions: ${name}: ${message}\n`);
        return 1;
      }
    }
    return error === undefined ? 0 : 1;
  } finally {
    if (client && !io.stepFunctions) (client as SFNClient).destroy();
  }
}

/** `{ errorType, errorMessage }` within Step Functions' cause limit (the message is cut, the JSON stays valid). */
function causeOf(error: Error): string {
  const full = JSON.stringify({ errorType: error.name, errorMessage: error.message });
  if (full.length <= MAX_CAUSE_LENGTH) return full;
  const overflow = full.length - MAX_CAUSE_LENGTH + 1;
  return JSON.stringify({ errorType: error.name, errorMessage: `${error.message.slice(0, -overflow - 16)}…` });
}

/**
 * Sends `SendTaskHeartbeat` now and every interval until stopped. A heartbeat the service refuses
 * (the state timed out, the execution was stopped) ends the heartbeats; the step still finishes,
 * its result recorded in the stores where a retry finds it in the cache.
 */
function startHeartbeat(client: TaskTokenClient, token: string, io: EcsTaskIo): { stop(): Promise<void> } {
  let inFlight: Promise<void> = Promise.resolve();
  let stopped = false;
  const beat = () => {
    inFlight = client
      .send(new SendTaskHeartbeatCommand({ taskToken: token }))
      .then(() => undefined)
      .catch((error: Error) => {
        io.stderr.write(`Step Functions refused a heartbeat (${error.name}: ${error.message}); no more are sent.\n`);
        stop();
      });
  };
  const timer = setInterval(beat, io.heartbeatIntervalMs ?? ECS_HEARTBEAT_INTERVAL_MS);
  timer.unref();
  const stop = () => {
    stopped = true;
    clearInterval(timer);
  };
  beat();
  return {
    async stop() {
      if (!stopped) stop();
      await inFlight;
    },
  };
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
