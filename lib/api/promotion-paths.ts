/**
 * The two promotion routes' paths, shared by the route table and the step runner's promotion call
 * (which sends them without the route table; see `request.ts`).
 */
export const MODEL_STAGE_PATH = '/models/{model}/versions/{version}/stage';
/** Its own resource, so only the release managers' policy grants its `execute-api` ARN. */
export const MODEL_PRODUCTION_PATH = '/models/{model}/versions/{version}/production';
