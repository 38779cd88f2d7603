/**
 * Promotions from step code on AWS: the step runner has `STACKLINE_API_URL` (set by the CDK runner
 * stack) and no write access to stage holders or history, so a step's `context.models.promote` is
 * sent to the API, signed with the runner role (SigV4), naming its run in `x-stackline-run`. The API
 * records `pipeline:<name> run <id>` and applies the environment's `promoters`.
 */

import { StackConfigError } from '../errors.ts';
import { PromotionRefusedError, StageHeldError } from '../metadata/promotion-rules.ts';
import type { ModelStage } from '../metadata/types.ts';
import { MODEL_PRODUCTION_PATH, MODEL_STAGE_PATH } from './promotion-paths.ts';
import { ApiRequestError, requestApi } from './request.ts';
import { RUN_HEADER } from './runner-caller.ts';
import { createSigV4Fetch } from './sigv4-fetch.ts';

let parameterUrl: Promise<string | undefined> | undefined;

/**
 * The API's URL for the step runner: `STACKLINE_API_URL`, else the SSM parameter named by
 * `STACKLINE_API_URL_PARAMETER` (the API stack writes it; the runner stack cannot refer to the API
 * without depending on it), read once per process. Undefined when that parameter does not exist:
 * the environment was deployed without its API stack (the moto deploy tier does this), and the
 * promotion is written directly — which on AWS the runner role's read-only access to the stages
 * table refuses.
 *
 * @throws StackConfigError when neither variable is set
 */
export function resolveRunnerApiUrl(env: NodeJS.ProcessEnv = process.env): Promise<string | undefined> {
  if (env.STACKLINE_API_URL) return Promise.resolve(env.STACKLINE_API_URL);
  const name = env.STACKLINE_API_URL_PARAMETER;
  if (!name) {
    return Promise.reject(
      new StackConfigError(
        'The step runner knows no API: set STACKLINE_API_URL or STACKLINE_API_URL_PARAMETER (the CDK runner stack does).',
      ),
    );
  }
  parameterUrl ??= (async () => {
    const { SSMClient, GetParameterCommand } = await import('@aws-sdk/client-ssm');
    const ssm = new SSMClient({});
    try {
      const { Parameter } = await ssm.send(new GetParameterCommand({ Name: name }));
      if (!Parameter?.Value) throw new StackConfigError(`SSM parameter ${name} has no value: deploy the API stack.`);
      return Parameter.Value;
    } catch (error) {
      if ((error as { name?: string }).name === 'ParameterNotFound') return undefined;
      throw error;
    } finally {
      ssm.destroy();
    }
  })().catch((error: unknown) => {
    parameterUrl = undefined;
    throw error;
  });
  return parameterUrl;
}

/**
 * Moves `model` version `version` into `stage` through the API at `apiUrl`, for run `runId`.
 *
 * @throws StageHeldError / PromotionRefusedError for a 409 (as the local store would), ApiRequestError otherwise
 */
export async function promoteThroughApi(
  apiUrl: string,
  runId: string,
  request: {
    model: string;
    version: number;
    stage: ModelStage;
    options: { force?: boolean; reason?: string; expectedHolder?: number | null };
  },
  fetchImpl: typeof fetch = createSigV4Fetch(),
): Promise<void> {
  const { model, version, stage, options } = request;
  const body = {
    ...(stage === 'production' ? {} : { stage }),
    ...(options.force === undefined ? {} : { force: options.force }),
    ...(options.reason === undefined ? {} : { reason: options.reason }),
    ...(options.expectedHolder === undefined ? {} : { expectedHolder: options.expectedHolder }),
  };
  try {
    await requestApi(
      { url: apiUrl, fetch: fetchImpl, headers: { [RUN_HEADER]: runId } },
      {
        method: 'post',
        path: stage === 'production' ? MODEL_PRODUCTION_PATH : MODEL_STAGE_PATH,
        params: { model, version },
        body,
      },
    );
  } catch (error) {
    // Step code may catch the store's conflict classes (a gate re-reading the holder): keep them.
    if (error instanceof ApiRequestError && error.status === 409) {
      const context = { model, version, stage, runId, ...(error.holder === undefined ? {} : { holder: error.holder }) };
      if (error.holder !== undefined) throw new StageHeldError(error.message, { cause: error, context });
      throw new PromotionRefusedError(error.message, { cause: error, context });
    }
    throw error;
  }
}
