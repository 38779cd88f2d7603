import './promise-with-resolvers.ts';
import { StateMachine } from 'aws-local-stepfunctions';
import type { MapState, State, StateMachineDefinition, StateMachineFragment } from '../../lib/compiler/asl-types.ts';

/** What the Task states of a compiled state machine are bound to. */
export interface TaskBindings {
  /** `lambda:invoke`: receives the `Payload`, returns the function's response or throws (its `name` is the error type). */
  lambda(payload: unknown): Promise<unknown>;
  /**
   * `ecs:runTask.waitForTaskToken`: runs the container with its `STACKLINE_REQUEST` and
   * `STACKLINE_TASK_TOKEN`, and `stepFunctions`, which takes the task's `SendTask*` calls as the
   * service would; returns the container's exit code.
   */
  ecs?(request: string, taskToken: string, stepFunctions: LocalTaskTokens): Promise<number>;
  /** A Distributed Map's `ItemReader` (`s3:getObject`, JSON): the item array in that object. */
  readItems?(bucket: string, key: string): Promise<unknown[]>;
}

export interface PayloadRecord {
  bytes: number;
  /** State name, or `<state> request` / `<state> response` for task payloads. */
  where: string;
}

export interface LocalExecution {
  output: unknown;
  /** Set when the execution failed: `name` is the ASL error (`StepFailed`, ...), `message` its cause. */
  error: { name: string; message: string } | undefined;
  /** The largest state input or output, and the largest task request or response, in bytes of JSON. */
  largestState: PayloadRecord;
  largestTaskPayload: PayloadRecord;
  /** Every task invocation, in call order (state name and the request). */
  taskCalls: Array<{ state: string; request: unknown }>;
  /** Every `SendTask*` call an ECS task made, in order. */
  taskTokenCalls: Array<{ command: string; taskToken: string; error?: string }>;
}

/** The `SendTaskSuccess` / `SendTaskFailure` / `SendTaskHeartbeat` calls of the ECS tasks of one execution. */
export interface LocalTaskTokens {
  send(command: { constructor: { name: string }; input: unknown }): Promise<unknown>;
}

const FINAL_EVENTS = new Set(['ExecutionSucceeded', 'ExecutionFailed', 'ExecutionAborted', 'ExecutionTimeout']);
const LAMBDA_INVOKE = 'arn:aws:states:::lambda:invoke';
const ECS_RUN_TASK = 'arn:aws:states:::ecs:runTask.waitForTaskToken';
/** What a Distributed Map does: one child execution per item. */
const CHILD_EXECUTIONS = 'arn:aws:states:::states:startExecution.sync:2';

/**
 * Executes a compiled definition on aws-local-stepfunctions, with Task states bound to local
 * functions the way AWS binds them:
 * - `lambda:invoke` gets `{ FunctionName, Payload }` and returns `{ Payload, StatusCode }`; a thrown
 *   error surfaces as AWS reports a function error: its `name` as the ASL error, and as the cause the
 *   JSON the Lambda runtime writes (`{ errorType, errorMessage, trace }`);
 * - `ecs:runTask.waitForTaskToken` runs the ECS entry with the `STACKLINE_REQUEST` override and a
 *   task token of its own (the interpreter has none); the task's `SendTaskSuccess` output becomes
 *   the state's result and its `SendTaskFailure` error and cause the state's error, as Step Functions
 *   does; a container that exits without reporting fails the state with `States.Timeout`, as its
 *   missing heartbeats would;
 * - a Distributed Map (which the interpreter does not support) becomes a task that reads the item
 *   list through `readItems` and runs the item processor as one child execution per item, at most
 *   `MaxConcurrency` at once; a failed child fails it with `States.ExceedToleratedFailureThreshold`.
 * Retry intervals are zeroed so retries do not slow tests down. State and task payload sizes are
 * measured on every state transition and task call, child executions included.
 */
export async function executeLocally(
  definition: StateMachineDefinition,
  input: Record<string, unknown>,
  bindings: TaskBindings,
  options: { executionArn?: string } = {},
): Promise<LocalExecution> {
  const taskCalls: LocalExecution['taskCalls'] = [];
  const taskTokenCalls: LocalExecution['taskTokenCalls'] = [];
  const outcomes = new Map<string, { output: string } | { error: string; cause: string }>();
  const stepFunctions: LocalTaskTokens = {
    async send(command) {
      const input = command.input as { taskToken: string; output?: string; error?: string; cause?: string };
      const name = command.constructor.name.replace(/Command$/, '');
      taskTokenCalls.push({
        command: name,
        taskToken: input.taskToken,
        ...(input.error ? { error: input.error } : {}),
      });
      if (!outcomes.has(input.taskToken)) throw namedError('InvalidToken', `Unknown task token ${input.taskToken}`);
      if (name === 'SendTaskSuccess') outcomes.set(input.taskToken, { output: input.output ?? 'null' });
      if (name === 'SendTaskFailure')
        outcomes.set(input.taskToken, { error: input.error ?? '', cause: input.cause ?? '' });
      return {};
    },
  };
  const largestState: PayloadRecord = { bytes: 0, where: '' };
  const largestTaskPayload: PayloadRecord = { bytes: 0, where: '' };
  const measure = (record: PayloadRecord, value: unknown, where: string) => {
    const bytes = value === undefined ? 0 : Buffer.byteLength(JSON.stringify(value), 'utf8');
    if (bytes > record.bytes) Object.assign(record, { bytes, where });
  };
  const executionArn = options.executionArn ?? `arn:aws:states:us-east-1:123456789012:execution:local:${Date.now()}`;
  // `Task.Token`: the interpreter has no task tokens; each ECS task gets its own (see above).
  const context = { Execution: { Id: executionArn, Name: executionArn.split(':').at(-1) }, Task: { Token: 'local' } };

  const machine = emulateDistributedMaps(structuredClone(definition));
  const handlers: Record<string, (input: unknown) => Promise<unknown>> = {};
  const retryIntervalOverrides: Record<string, number> = {};
  const runOptions = () => ({
    overrides: { taskResourceLocalHandlers: handlers, retryIntervalOverrides },
    context: structuredClone(context),
  });

  const watch = async (events: AsyncGenerator<unknown>) => {
    for await (const event of events as AsyncGenerator<{
      type: string;
      state?: { name: string; input?: unknown; output?: unknown };
    }>) {
      if (event.state) {
        measure(largestState, event.state.input, event.state.name);
        if (event.type === 'StateExited') measure(largestState, event.state.output, event.state.name);
      }
      if (FINAL_EVENTS.has(event.type)) return;
    }
  };

  for (const [name, state, distributed] of allStates(machine)) {
    if ('Retry' in state && state.Retry) retryIntervalOverrides[name] = 0;
    if (state.Type !== 'Task') continue;
    if (state.Resource === LAMBDA_INVOKE) {
      handlers[name] = async (effective) => {
        const { Payload } = effective as { Payload: unknown };
        taskCalls.push({ state: name, request: Payload });
        measure(largestTaskPayload, Payload, `${name} request`);
        let response: unknown;
        try {
          response = await bindings.lambda(Payload);
        } catch (error) {
          const e = error instanceof Error ? error : new Error(String(error));
          throw namedError(e.name, JSON.stringify({ errorType: e.name, errorMessage: e.message, trace: [] }));
        }
        measure(largestTaskPayload, response, `${name} response`);
        return { Payload: response ?? null, StatusCode: 200 };
      };
    } else if (state.Resource === ECS_RUN_TASK) {
      handlers[name] = async (effective) => {
        const environment = (effective as EcsParameters).Overrides.ContainerOverrides[0]!.Environment;
        const request = environment.find((variable) => variable.Name === 'STACKLINE_REQUEST')!.Value;
        taskCalls.push({ state: name, request: JSON.parse(request) });
        measure(largestTaskPayload, request, `${name} request`);
        if (!bindings.ecs) throw new Error(`State ${name} runs an ECS task, but no ECS binding was given.`);
        const taskToken = `local-task-token-${taskCalls.length}`;
        outcomes.set(taskToken, { output: '' });
        await bindings.ecs(request, taskToken, stepFunctions);
        const outcome = outcomes.get(taskToken)!;
        outcomes.delete(taskToken);
        if ('error' in outcome) throw namedError(outcome.error, outcome.cause);
        if (outcome.output === '')
          throw namedError('States.Timeout', `The task of ${name} stopped without sending its task token back.`);
        const output = JSON.parse(outcome.output) as unknown;
        measure(largestTaskPayload, output, `${name} response`);
        return output;
      };
    } else if (state.Resource === CHILD_EXECUTIONS && distributed) {
      handlers[name] = async (effective) => {
        const { mapInput, Bucket, Key } = effective as { mapInput: unknown; Bucket: string; Key: string };
        if (!bindings.readItems)
          throw new Error(`State ${name} is a Distributed Map, but no readItems binding was given.`);
        const items = await bindings.readItems(Bucket, Key);
        const processor = new StateMachine(
          { StartAt: distributed.ItemProcessor.StartAt, States: distributed.ItemProcessor.States } as never,
          { validationOptions: { noValidate: true } },
        );
        let next = 0;
        let failure: Error | undefined;
        const worker = async () => {
          while (failure === undefined && next < items.length) {
            const index = next++;
            const itemInput = selectItem(distributed.ItemSelector, mapInput, { Index: index, Value: items[index] });
            const child = processor.run(itemInput as never, runOptions() as never);
            const watching = watch(child.eventLogs);
            try {
              await child.result;
            } catch (error) {
              failure ??= error as Error;
            }
            await watching;
          }
        };
        const width = distributed.MaxConcurrency || items.length;
        await Promise.all(Array.from({ length: Math.min(width, items.length) }, worker));
        if (failure) {
          const cause = (failure as { cause?: { message?: string } }).cause?.message ?? failure.message;
          throw namedError('States.ExceedToleratedFailureThreshold', `A child execution of ${name} failed: ${cause}`);
        }
        return { MapRunArn: `${executionArn}/${name}`, ItemCount: items.length };
      };
    }
  }

  const execution = new StateMachine(machine as never).run(input as never, runOptions() as never);
  const watching = watch(execution.eventLogs);
  let output: unknown;
  let error: LocalExecution['error'];
  try {
    output = await execution.result;
  } catch (caught) {
    // ExecutionError wraps the failure (a Fail state: name = its Error, message = its Cause).
    const cause = (caught as { cause?: { name?: string; message?: string } }).cause;
    error = { name: cause?.name ?? (caught as Error).name, message: cause?.message ?? (caught as Error).message };
  }
  await watching;
  return { output, error, largestState, largestTaskPayload, taskCalls, taskTokenCalls };
}

interface EcsParameters {
  Overrides: { ContainerOverrides: Array<{ Environment: Array<{ Name: string; Value: string }> }> };
}

function namedError(name: string, message: string): Error {
  const error = new Error(message);
  error.name = name;
  return error;
}

/** Replaces each Distributed Map (`ItemReader`) by a Task running child executions (see `executeLocally`). */
function emulateDistributedMaps(definition: StateMachineDefinition): StateMachineDefinition {
  const rewrite = (fragment: StateMachineFragment) => {
    for (const [name, state] of Object.entries(fragment.States)) {
      if (state.Type === 'Parallel') state.Branches.forEach(rewrite);
      if (state.Type !== 'Map') continue;
      rewrite(state.ItemProcessor);
      if (!state.ItemReader) continue;
      distributedMaps.set(name, state);
      const {
        Type: _type,
        ItemReader,
        ItemSelector: _selector,
        ItemProcessor: _processor,
        MaxConcurrency: _width,
        ...rest
      } = state;
      fragment.States[name] = {
        ...rest,
        Type: 'Task',
        Resource: CHILD_EXECUTIONS,
        Parameters: { 'mapInput.$': '$', ...ItemReader.Parameters },
        // The interpreter gives tasks 60 s by default; a Map has no timeout of its own.
        TimeoutSeconds: 86_400,
      } as State;
    }
  };
  const distributedMaps = new Map<string, MapState>();
  rewrite(definition);
  emulated.set(definition, distributedMaps);
  return definition;
}
const emulated = new WeakMap<StateMachineDefinition, Map<string, MapState>>();

/** Every state with its name, recursively; for emulated Distributed Maps, the original Map too. */
function allStates(definition: StateMachineDefinition): Array<[string, State, MapState | undefined]> {
  const maps = emulated.get(definition) ?? new Map<string, MapState>();
  const out: Array<[string, State, MapState | undefined]> = [];
  const visit = (fragment: StateMachineFragment) => {
    for (const [name, state] of Object.entries(fragment.States)) {
      const distributed = maps.get(name);
      out.push([name, state, distributed]);
      if (state.Type === 'Parallel') state.Branches.forEach(visit);
      if (state.Type === 'Map') visit(state.ItemProcessor);
      if (distributed) visit(distributed.ItemProcessor);
    }
  };
  visit(definition);
  return out;
}

/** Evaluates an `ItemSelector` of plain paths (`$.a.b`, `$$.Map.Item.Value`): all the compiler emits. */
function selectItem(
  selector: MapState['ItemSelector'],
  input: unknown,
  item: { Index: number; Value: unknown },
): unknown {
  if (!selector) return item.Value;
  const read = (root: unknown, path: string[]) =>
    path.reduce<unknown>((value, key) => (value as Record<string, unknown> | undefined)?.[key], root);
  return Object.fromEntries(
    Object.entries(selector).map(([key, value]) => {
      if (!key.endsWith('.$')) return [key, value];
      const path = String(value);
      if (path.startsWith('$$.Map.Item.')) return [key.slice(0, -2), read(item, path.split('.').slice(3))];
      if (path.startsWith('$.')) return [key.slice(0, -2), read(input, path.split('.').slice(1))];
      throw new Error(`ItemSelector path ${path} is not supported by the local Distributed Map emulation.`);
    }),
  );
}
