import type { ErrorInfo } from './metadata/types.ts';

/**
 * Every error Stackline raises on purpose is a {@link StacklineError}. Each carries a stable `code`,
 * the context that identifies what failed, and (in the message) what to do about it. The CLI maps
 * them to exit codes in one place (`lib/cli/exit-codes.ts`); the API will map them to HTTP statuses.
 */
export class StacklineError extends Error {
  readonly code: string = 'STACKLINE_ERROR';
  readonly context: Record<string, unknown>;

  constructor(message: string, options: { cause?: unknown; context?: Record<string, unknown> } = {}) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.name = new.target.name;
    this.context = options.context ?? {};
  }
}

/** A pipeline or step definition is invalid (cycle, unknown input, duplicate id, ...). */
export class PipelineDefinitionError extends StacklineError {
  override readonly code = 'PIPELINE_DEFINITION';
}

/** User input (CLI arguments, parameters, config files, API bodies) failed validation. */
export class ValidationError extends StacklineError {
  override readonly code = 'VALIDATION';
}

/** A step's returned value does not match the schema declared for one of its outputs. */
export class OutputValidationError extends StacklineError {
  override readonly code = 'OUTPUT_VALIDATION';
}

/** A step threw (after exhausting its retries) or timed out. */
export class StepFailedError extends StacklineError {
  override readonly code = 'STEP_FAILED';
}

/** A step ran longer than its `timeoutMs`. */
export class StepTimeoutError extends StacklineError {
  override readonly code = 'STEP_TIMEOUT';
}

/** The run was cancelled (SIGINT, abort signal). */
export class RunCancelledError extends StacklineError {
  override readonly code = 'RUN_CANCELLED';
}

/** Something looked up by name, id or version does not exist. */
export class NotFoundError extends StacklineError {
  override readonly code = 'NOT_FOUND';
}

/** A write lost a race or would overwrite something that must not change (held stage, taken name). */
export class ConflictError extends StacklineError {
  override readonly code: string = 'CONFLICT';
}

/** A step run cannot start because its run has already finished (a late or duplicate delivery). */
export class RunFinishedError extends ConflictError {
  override readonly code = 'RUN_FINISHED';
}

/**
 * Another executor holds an unexpired in-progress lease on the same (run, step, item): a duplicate
 * delivery. Retriable: once the holder finishes or its lease expires, a retry completes or takes over.
 */
export class StepInProgressError extends ConflictError {
  override readonly code = 'STEP_IN_PROGRESS';
}

/** The (run, step, item) already completed: a duplicate delivery. `context.stepRunId` names the result. */
export class StepAlreadyDoneError extends ConflictError {
  override readonly code = 'STEP_ALREADY_DONE';
}

/**
 * Throw from a step to fail it at once, without the retries its options allow
 * (for errors that retrying cannot fix, such as bad input data).
 */
export class NonRetriableError extends StacklineError {
  override readonly code = 'NON_RETRIABLE';
}

/**
 * An event or schedule delivered again: the run its first delivery started exists, so this
 * execution starts nothing and ends (the compiled state machine catches it into a `Succeed` state).
 */
export class DuplicateTriggerError extends NonRetriableError {}

/** A request carried no valid credentials (missing, unknown or revoked API token). */
export class AuthenticationError extends StacklineError {
  override readonly code = 'UNAUTHENTICATED';
}

/** The caller is known but their role does not allow this operation. */
export class PermissionDeniedError extends StacklineError {
  override readonly code = 'PERMISSION_DENIED';
}

/** A stack's configuration is unusable (missing component setting, unsupported combination). */
export class StackConfigError extends StacklineError {
  override readonly code = 'STACK_CONFIG';
}

/** A Step Functions execution failed outside the step runner; the message carries its own error and cause. */
export class ExecutionFailedError extends StacklineError {
  override readonly code = 'EXECUTION_FAILED';
}

export function errorMessage(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}

/**
 * What a run or step run records about an error. Step runs keep the stack (it points into the
 * user's step); runs keep only type and message.
 */
export function errorInfo(error: unknown, options: { withStack?: boolean } = {}): ErrorInfo {
  if (!(error instanceof Error)) return { type: 'Error', message: String(error) };
  return {
    type: error.name,
    message: error.message,
    ...(options.withStack && error.stack ? { stack: error.stack } : {}),
  };
}

/**
 * Stored bytes do not match their content hash (edited, truncated or damaged on disk or in the
 * bucket). Loads name the artifact version; `stackline artifacts verify` lists every one.
 */
export class IntegrityError extends StacklineError {
  override readonly code = 'INTEGRITY';
}

/** The metadata database is empty, damaged or not a Stackline database; the message says how to recover. */
export class MetadataStoreDamagedError extends StacklineError {
  override readonly code = 'METADATA_DAMAGED';
}

/** The metadata database stayed locked by another process through every retry. */
export class MetadataStoreLockedError extends StacklineError {
  override readonly code = 'METADATA_LOCKED';
}
