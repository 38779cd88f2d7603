/**
 * What every {@link RunStarter} refuses, in the same words whichever backend starts the run.
 */
import { ConflictError, NotFoundError, ValidationError } from '../../errors.ts';
import type { StartRunRequest } from '../context.ts';

/** The caller's compiled pipeline is not the one the server runs (`definitionSha256` differs). */
export class DefinitionDriftError extends ConflictError {
  override readonly code = 'DEFINITION_DRIFT';
}

/** @throws ValidationError when the request names another stack than the one this API serves. */
export function assertServedStack(request: StartRunRequest, servedStack: string): void {
  if (request.stack !== undefined && request.stack !== servedStack) {
    throw new ValidationError(
      `This API serves stack "${servedStack}", not "${request.stack}": connect to that stack's API (stackline login URL) or drop the stack.`,
      { context: { stack: request.stack, served: servedStack } },
    );
  }
}

/** @throws NotFoundError naming the pipelines the server knows. */
export function unknownPipeline(name: string, known: readonly string[], how: string): never {
  throw new NotFoundError(
    `No pipeline "${name}" on this API (known: ${known.length === 0 ? 'none' : [...known].sort().join(', ')}); ${how}.`,
    { context: { pipeline: name } },
  );
}

/** @throws DefinitionDriftError when the caller sent a hash and it is not the served definition's. */
export function assertSameDefinition(request: StartRunRequest, served: string, stack: string): void {
  if (request.definitionSha256 === undefined || request.definitionSha256 === served) return;
  throw new DefinitionDriftError(
    `Pipeline "${request.pipeline}" differs from the one stack "${stack}" runs (local definition ${request.definitionSha256.slice(0, 12)}, deployed ${served.slice(0, 12)}): deploy this version (\`stackline deploy --env <env>\`) or run from the revision that was deployed.`,
    { context: { pipeline: request.pipeline, local: request.definitionSha256, deployed: served } },
  );
}
