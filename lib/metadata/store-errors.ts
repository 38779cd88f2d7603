import { ConflictError, NotFoundError, ValidationError } from '../errors.ts';
import { MODEL_STAGES, type ModelVersionRef } from './types.ts';

/**
 * The refusals both metadata stores share, worded once. Adapters decide *when* (a missing row, a
 * failed DynamoDB condition) and call these for *what* to say, so the SQLite and DynamoDB stores
 * cannot drift apart in their messages or the context they attach.
 */
type Extra = { cause?: unknown; context?: Record<string, unknown> };

function options(context: Record<string, unknown>, extra: Extra = {}) {
  return { ...(extra.cause === undefined ? {} : { cause: extra.cause }), context: { ...context, ...extra.context } };
}

export const storeErrors = {
  stackNotFound: (name: string, extra?: Extra) =>
    new NotFoundError(`Stack "${name}" not found`, options({ stack: name }, extra)),
  runNotFound: (runId: string, extra?: Extra) =>
    new NotFoundError(`Run "${runId}" not found`, options({ runId }, extra)),
  runOfStepRunNotFound: (runId: string, stepRunId: string) =>
    new NotFoundError(`Run "${runId}" of step run "${stepRunId}" not found; create the run first`, {
      context: { runId, stepRunId },
    }),
  stepRunNotFound: (stepRunId: string) =>
    new NotFoundError(`Step run "${stepRunId}" not found`, { context: { stepRunId } }),
  modelNotFound: (model: string, extra?: Extra) =>
    new NotFoundError(`Model "${model}" not found`, options({ model }, extra)),
  modelVersionNotFound: (modelVersionId: string) =>
    new NotFoundError(`Model version "${modelVersionId}" not found`, { context: { modelVersionId } }),
  modelVersionNumberNotFound: (model: string, version: number) =>
    new NotFoundError(`Model "${model}" has no version ${version}`, { context: { model, version } }),
  modelAliasNotFound: (model: string, alias: string) =>
    new NotFoundError(`Model "${model}" has no alias "${alias}"`, { context: { model, alias } }),
  /** A version reference (number, `latest`, stage, alias or name) that resolves to nothing. */
  unresolvedModelVersion(model: string, ref: ModelVersionRef): NotFoundError {
    const context = { model, ref };
    if (typeof ref === 'number') return new NotFoundError(`Model "${model}" has no version ${ref}`, { context });
    if (ref === 'latest') {
      return new NotFoundError(`Model "${model}" has no version "latest": it has no versions yet`, { context });
    }
    if ((MODEL_STAGES as readonly string[]).includes(ref)) {
      return new NotFoundError(`Model "${model}" has no version in stage "${ref}"`, { context });
    }
    return new NotFoundError(`Model "${model}" has no version named or aliased "${ref}"`, { context });
  },
  artifactVersionNotFound: (artifactVersionId: string, context: Record<string, unknown> = {}) =>
    new NotFoundError(`Artifact version "${artifactVersionId}" not found`, {
      context: { ...context, artifactVersionId },
    }),
  artifactVersionMissing(name: string, version: number | 'latest'): NotFoundError {
    const context = { artifact: name, version };
    return version === 'latest'
      ? new NotFoundError(`Artifact "${name}" has no versions`, { context })
      : new NotFoundError(`Artifact "${name}" has no version ${version}`, { context });
  },
  alreadyExists: (
    what: 'Run' | 'Step run' | 'Artifact version' | 'Model',
    id: string,
    context: Record<string, unknown>,
  ) => new ConflictError(`${what} "${id}" already exists`, { context }),
  runAlreadyFinished: (runId: string, status: string, requestedStatus: string, extra?: Extra) =>
    new ConflictError(
      `Run "${runId}" already finished as ${status}; it cannot become ${requestedStatus}`,
      options({ runId, status, requestedStatus }, extra),
    ),
  outputListedTwice: (stepRunId: string, output: string) =>
    new ValidationError(`Step run "${stepRunId}" lists output "${output}" twice`, { context: { stepRunId, output } }),
  cachedWithoutSource: (stepRunId: string) =>
    new ValidationError(`Cached step run "${stepRunId}" must name the step run it reuses (cachedFrom)`, {
      context: { stepRunId },
    }),
  invalidCursor: (cursor: string) =>
    new ValidationError(`Invalid page cursor "${cursor}"; pass back the nextCursor of the previous page`, {
      context: { cursor },
    }),
  unknownStage: (stage: string, context: Record<string, unknown> = {}) =>
    new ValidationError(`Unknown model stage "${stage}"; use one of ${MODEL_STAGES.join(', ')}`, {
      context: { ...context, stage },
    }),
  targetNotFound: (label: string, id: string, target: unknown) =>
    new NotFoundError(`${label} "${id}" not found`, { context: { target } }),
};
