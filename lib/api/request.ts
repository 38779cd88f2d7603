/**
 * One API request, with nothing of the route table or the response schemas: the typed client
 * (`client.ts`) builds on it, and the step runner's promotion call uses it alone, so the Lambda
 * bundle does not carry every route's schemas and handlers.
 */
import { StacklineError } from '../errors.ts';

/** An API answer that was not 2xx: the JSON error's status, code and message, and for 409 the holder. */
export class ApiRequestError extends StacklineError {
  override readonly code = 'API_REQUEST';
  constructor(
    readonly status: number,
    readonly errorCode: string,
    message: string,
    readonly holder?: number,
  ) {
    super(message, { context: { status, code: errorCode, ...(holder === undefined ? {} : { holder }) } });
  }
}

export interface ApiEndpoint {
  url: string;
  token?: string;
  fetch?: typeof fetch;
  /** Sent with every request (the step runner names its run in `x-stackline-run`). */
  headers?: Record<string, string>;
}

export interface ApiRequest {
  method: string;
  /** OpenAPI form, `/runs/{runId}`: each `{name}` is replaced by `params[name]`, URL-encoded. */
  path: string;
  params?: Record<string, string | number>;
  query?: Record<string, unknown>;
  body?: unknown;
}

/**
 * Sends one request and returns its JSON body.
 *
 * @throws ApiRequestError when the answer is not 2xx, with the API's error code, message and holder
 */
export async function requestApi(endpoint: ApiEndpoint, request: ApiRequest): Promise<unknown> {
  const path = request.path.replace(/\{(\w+)\}/g, (_, name: string) =>
    encodeURIComponent(String(request.params?.[name] ?? '')),
  );
  const query = new URLSearchParams(
    Object.entries(request.query ?? {})
      .filter(([, v]) => v !== undefined)
      .map(([k, v]): [string, string] => [k, String(v)]),
  ).toString();
  const { body } = request;
  const res = await (endpoint.fetch ?? globalThis.fetch)(
    `${endpoint.url.replace(/\/+$/, '')}${path}${query ? `?${query}` : ''}`,
    {
      method: request.method.toUpperCase(),
      headers: {
        ...endpoint.headers,
        ...(endpoint.token ? { authorization: `Bearer ${endpoint.token}` } : {}),
        ...(body === undefined ? {} : { 'content-type': 'application/json' }),
      },
      ...(body === undefined ? {} : { body: JSON.stringify(body) }),
    },
  );
  const json: unknown = await res.json().catch(() => undefined);
  if (!res.ok) {
    const e = apiError(json);
    throw new ApiRequestError(res.status, e?.code ?? 'HTTP', e?.message ?? `HTTP ${res.status}`, e?.holder);
  }
  return json;
}

/** The `error` of an API error body (`ApiErrorSchema` in schemas.ts), read without zod. */
function apiError(json: unknown): { code: string; message: string; holder?: number } | undefined {
  const e = (json as { error?: { code?: unknown; message?: unknown; holder?: unknown } } | undefined)?.error;
  if (typeof e?.code !== 'string' || typeof e.message !== 'string') return undefined;
  return {
    code: e.code,
    message: e.message,
    ...(Number.isInteger(e.holder) ? { holder: e.holder as number } : {}),
  };
}
