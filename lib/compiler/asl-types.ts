/**
 * Amazon States Language (ASL) as typed plain data: the subset the Stackline compiler emits
 * (JSONPath query language). Objects of these types are built in a fixed key order and
 * serialized once by {@link compileToAsl}, so equal pipelines always give byte-identical JSON.
 *
 * Field names and semantics follow the ASL specification and the AWS Step Functions
 * documentation; see https://states-language.net/spec.html.
 *
 * @packageDocumentation
 */

/** A JSON value as it appears in a definition. */
export type JsonValue = string | number | boolean | null | JsonValue[] | { [key: string]: JsonValue };

/**
 * A payload template (`Parameters`, `ResultSelector`, `ItemSelector`, ...): a JSON object whose
 * keys ending in `.$` hold a path (`$.run.runId`, `$$.Execution.Id`) or an intrinsic function
 * (`States.JsonToString($.request)`) evaluated at run time.
 */
export type PayloadTemplate = { [key: string]: JsonValue };

/** How a state continues: to the named state, or it ends its (sub-)state machine. */
export type Transition = { Next: string; End?: never } | { End: true; Next?: never };

/** Retries a state on matching errors, waiting `IntervalSeconds × BackoffRate^(n-1)` (capped by `MaxDelaySeconds`). */
export interface Retrier {
  ErrorEquals: string[];
  IntervalSeconds?: number;
  /** `0` means "never retry" (used to stop later retriers from matching an error). */
  MaxAttempts?: number;
  BackoffRate?: number;
  MaxDelaySeconds?: number;
  JitterStrategy?: 'FULL' | 'NONE';
}

/** Moves to `Next` when a matching error is not (or no longer) retried; the error lands at `ResultPath`. */
export interface Catcher {
  ErrorEquals: string[];
  ResultPath?: string | null;
  Next: string;
}

/** A sub-state machine: a `Parallel` branch or a `Map` item processor. */
export interface StateMachineFragment {
  StartAt: string;
  States: Record<string, State>;
}

export type TaskState = {
  Type: 'Task';
  Comment?: string;
  /** An optimized service integration such as `arn:aws:states:::lambda:invoke`. */
  Resource: string;
  Parameters?: PayloadTemplate;
  ResultSelector?: PayloadTemplate;
  /** `null` discards the task's result (the state's input passes through unchanged). */
  ResultPath?: string | null;
  /** `null` makes the state's output `{}`. */
  OutputPath?: string | null;
  /** Per attempt: a retry starts a fresh timeout. */
  TimeoutSeconds?: number;
  /** A callback task (`.waitForTaskToken`) fails with `States.Timeout` when no heartbeat arrives for this long; below `TimeoutSeconds`. */
  HeartbeatSeconds?: number;
  Retry?: Retrier[];
  Catch?: Catcher[];
} & Transition;

export type PassState = {
  Type: 'Pass';
  Comment?: string;
  Parameters?: PayloadTemplate;
  /** A fixed value to place at `ResultPath`. */
  Result?: unknown;
  ResultPath?: string | null;
} & Transition;

/** One rule of a `Choice` state. Only the comparison the compiler uses is typed. */
export interface ChoiceRule {
  Variable: string;
  IsPresent: boolean;
  Next: string;
}

export interface ChoiceState {
  Type: 'Choice';
  Comment?: string;
  Choices: ChoiceRule[];
  Default?: string;
}

export type ParallelState = {
  Type: 'Parallel';
  Comment?: string;
  Branches: StateMachineFragment[];
  ResultPath?: string | null;
  Retry?: Retrier[];
  Catch?: Catcher[];
} & Transition;

/** Where a `Map` state's iterations run: in the parent execution, or as child executions. */
export type ProcessorConfig = { Mode: 'INLINE' } | { Mode: 'DISTRIBUTED'; ExecutionType: 'STANDARD' | 'EXPRESS' };

export interface ItemProcessor extends StateMachineFragment {
  ProcessorConfig: ProcessorConfig;
}

/** Reads a Distributed Map's items from an S3 object instead of the state. */
export interface ItemReader {
  Resource: 'arn:aws:states:::s3:getObject';
  ReaderConfig: { InputType: 'JSON' | 'CSV' | 'MANIFEST' };
  Parameters: PayloadTemplate;
}

export type MapState = {
  Type: 'Map';
  Comment?: string;
  /** Inline Map: the array in the state to iterate over. */
  ItemsPath?: string;
  /** Distributed Map: the S3 object holding the items. */
  ItemReader?: ItemReader;
  ItemSelector?: PayloadTemplate;
  ItemProcessor: ItemProcessor;
  /** `0` means no limit (in practice 40 for inline Maps, 10,000 for Distributed Maps). */
  MaxConcurrency?: number;
  ResultPath?: string | null;
  Retry?: Retrier[];
  Catch?: Catcher[];
} & Transition;

export interface FailState {
  Type: 'Fail';
  Comment?: string;
  Error?: string;
  Cause?: string;
  /** Reads the cause from the state (mutually exclusive with `Cause`). */
  CausePath?: string;
}

export interface SucceedState {
  Type: 'Succeed';
  Comment?: string;
}

export type State = TaskState | PassState | ChoiceState | ParallelState | MapState | FailState | SucceedState;

/** A whole state machine definition, as `CreateStateMachine` takes it. */
export interface StateMachineDefinition extends StateMachineFragment {
  Comment?: string;
}
