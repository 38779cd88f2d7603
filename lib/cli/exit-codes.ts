import {
  ConflictError,
  IntegrityError,
  MetadataStoreDamagedError,
  MetadataStoreLockedError,
  NotFoundError,
  PipelineDefinitionError,
  StackConfigError,
  StacklineError,
  ValidationError,
} from '../errors.ts';

/** Process exit codes of the `stackline` CLI. */
export const ExitCode = {
  Ok: 0,
  /** The run (or the operation) failed. */
  Failed: 1,
  /** Bad usage or input: unknown option, invalid parameter, invalid pipeline, unknown name. */
  Usage: 2,
  /** Stored data is damaged: a blob that does not match its hash, an unreadable metadata database. */
  Damaged: 3,
  /** The metadata database stayed locked by another process; try again. */
  Locked: 4,
  /** Interrupted (SIGINT / SIGTERM): the run was marked `cancelled`. */
  Interrupted: 130,
} as const;

/** The one place errors become exit codes. */
export function exitCodeFor(error: unknown): number {
  if (
    error instanceof ValidationError ||
    error instanceof PipelineDefinitionError ||
    error instanceof NotFoundError ||
    error instanceof StackConfigError ||
    error instanceof ConflictError
  ) {
    return ExitCode.Usage;
  }
  // An API's refusal (StacklineApiClient): the API's 4xx are the caller's input, as they are locally.
  if (error instanceof StacklineError && error.code === 'API_REQUEST') {
    const status = error.context.status;
    return typeof status === 'number' && status < 500 ? ExitCode.Usage : ExitCode.Failed;
  }
  if (error instanceof IntegrityError || error instanceof MetadataStoreDamagedError) return ExitCode.Damaged;
  if (error instanceof MetadataStoreLockedError) return ExitCode.Locked;
  if (error instanceof StacklineError && error.code === 'RUN_CANCELLED') return ExitCode.Interrupted;
  return ExitCode.Failed;
}
