/**
 * The Stackline API as one Lambda function behind API Gateway (REST, AWS_IAM on every method). All
 * logic lives in `lib/api/`; this file adapts the invocation: middy runs the middlewares, Powertools
 * Logger writes structured logs with the request id, zod checks the event's IAM identity, and Hono's
 * Lambda adapter turns the proxy event into a request for the same app `stackline serve` runs.
 *
 * Authorization: API Gateway checks each caller's SigV4 signature and IAM policy before invoking
 * this function — the members' and release managers' managed policies in `infra/api-stack.ts` grant
 * routes by `execute-api` ARN, production promotion being its own route. The function therefore
 * trusts that a request reaching it was allowed by IAM, records the signer's ARN as the actor, and
 * itself only checks what IAM cannot see (a `force` flag or a protected alias in the body).
 */

import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Logger } from '@aws-lambda-powertools/logger';
import { injectLambdaContext } from '@aws-lambda-powertools/logger/middleware';
import middy, { type MiddlewareObj } from '@middy/core';
import { handle, type LambdaContext, type LambdaEvent } from 'hono/aws-lambda';
import { createApiApp } from '../../lib/api/app.ts';
import { createAwsApiOptions, IamIdentitySchema, resolveIamCaller } from '../../lib/api/aws-api-config.ts';
import { RUN_HEADER } from '../../lib/api/runner-caller.ts';
import { isDashboardBuild } from '../../lib/api/static-dashboard.ts';
import { errorMessage } from '../../lib/errors.ts';

export const logger = new Logger({ serviceName: 'stackline-api' });

type AppOptions = ReturnType<typeof createAwsApiOptions>;

/**
 * Rejects events without the identity AWS_IAM authorization fills in, before any handler runs:
 * a misconfigured method (no auth) must not reach the stores.
 */
function requireIamIdentity(): MiddlewareObj<LambdaEvent> {
  return {
    name: 'requireIamIdentity',
    before: (request) => {
      if (!IamIdentitySchema.safeParse(request.event).success) {
        logger.error('event without an IAM identity: is the method AWS_IAM?');
        return {
          statusCode: 401,
          headers: { 'content-type': 'application/json' },
          body: JSON.stringify({
            error: { status: 401, code: 'UNAUTHENTICATED', message: 'No IAM identity on the request.' },
          }),
        };
      }
    },
  };
}

/** The dashboard's files ship beside the bundle, in `dashboard/` (`bundleApiLambda`). */
function bundledDashboard(): string | undefined {
  const dir = join(dirname(fileURLToPath(import.meta.url)), 'dashboard');
  return isDashboardBuild(dir) ? dir : undefined;
}

/**
 * The Lambda handler. The stores are made from the environment at the first invocation
 * (`resolveOptions`, replaceable in tests) and reused while the container is warm. The dashboard
 * is served at `GET /` behind the same AWS_IAM authorization as every route.
 */
export function createApiLambdaHandler(
  resolveOptions: () => AppOptions = () => createAwsApiOptions(),
  dashboardDir: string | undefined = bundledDashboard(),
) {
  let served: ReturnType<typeof handle> | undefined;
  const serve = () => {
    if (served) return served;
    const options = resolveOptions();
    const app = createApiApp({
      ...options,
      ...(dashboardDir ? { dashboardDir } : {}),
      authenticate: async (c) => {
        const event = (c.env as { event?: unknown }).event;
        const caller = await resolveIamCaller(event, c.req.header(RUN_HEADER), options, options.metadata);
        logger.appendKeys({ actor: caller.actor });
        return caller;
      },
      onInternalError: (error, c) =>
        logger.error('request failed', { method: c.req.method, path: c.req.path, error: errorMessage(error) }),
    });
    served = handle(app);
    return served;
  };
  return middy<LambdaEvent, unknown, Error, LambdaContext>()
    .use(injectLambdaContext(logger, { resetKeys: true }))
    .use(requireIamIdentity())
    .handler((event, context) => serve()(event, context));
}

export const handler = createApiLambdaHandler();
