import { AuthenticationError, NotFoundError, PermissionDeniedError } from '../errors.ts';
import type { MetadataStore } from '../metadata/metadata-store.ts';
import { pipelineActor } from '../models/model-context.ts';
import type { Caller } from './caller.ts';

/** The header in which the step runner names the run its step code acts for. */
export const RUN_HEADER = 'x-stackline-run';

const RUN_ID = /^[A-Za-z0-9_-]{1,100}$/;

/**
 * The caller behind a request signed by the step-runner role: the run named in {@link RUN_HEADER}
 * (which must exist and still be running), recorded as `pipeline:<name> run <id>`. The pipeline name
 * comes from the run record, never from the request; the run id is believed only because IAM says
 * the signer is the runner role, which only the environment's step runner can assume.
 *
 * @throws AuthenticationError when the header is missing or names no run
 * @throws PermissionDeniedError when the run has ended (a finished run's code no longer acts)
 */
export async function runnerCaller(metadata: MetadataStore, runId: string | undefined): Promise<Caller> {
  if (!runId || !RUN_ID.test(runId)) {
    throw new AuthenticationError(`The step runner must name its run in the ${RUN_HEADER} header.`);
  }
  const run = await metadata.runs.get(runId).catch((error: unknown) => {
    if (error instanceof NotFoundError)
      throw new AuthenticationError(`The step runner named run "${runId}", which does not exist.`);
    throw error;
  });
  if (run.status !== 'running') {
    throw new PermissionDeniedError(`Run "${runId}" is ${run.status}: only a running run's steps may act for it.`, {
      context: { runId, status: run.status },
    });
  }
  return {
    actor: pipelineActor({ pipeline: run.pipeline, runId }),
    role: 'member',
    run: { pipeline: run.pipeline, runId },
  };
}
