import {
  ConflictError,
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
  if (error instanceof StacklineError && error.code === 'RUN_CANCELLED') return ExitCode.Interrupted;
  return ExitCode.Failed;
}
