/**
 * `fetch` that signs each request with AWS Signature Version 4 for API Gateway (`execute-api`), with
 * credentials from the default AWS chain (environment, SSO, profiles, ECS/Lambda roles, IMDS): how
 * the CLI, notebooks and the step runner call an API whose methods use AWS_IAM authorization.
 */
import { SignatureV4MultiRegion } from '@aws-sdk/signature-v4-multi-region';
import { Hash } from '@smithy/hash-node';
import type { AwsCredentialIdentityProvider } from '@smithy/types';
import { AuthenticationError, errorMessage, ValidationError } from '../errors.ts';

/** `https://<id>.execute-api.<region>.amazonaws.com/...` → `<region>`; undefined for other hosts. */
export function regionOfApiUrl(url: string): string | undefined {
  return /^[a-z0-9]+\.execute-api\.([a-z0-9-]+)\.amazonaws\.com(\.cn)?$/.exec(new URL(url).hostname)?.[1];
}

/** Options of {@link createSigV4Fetch}. */
export interface SigV4FetchOptions {
  /** The API's region. Default: from an `execute-api` URL, else `AWS_REGION`. */
  region?: string;
  /** Default: the AWS SDK's default credential chain (`defaultProvider`). */
  credentials?: AwsCredentialIdentityProvider;
  fetch?: typeof fetch;
}

/**
 * A `fetch` that signs every request (method, path, query, headers and body) for `execute-api`.
 *
 * @throws AuthenticationError (from the returned function) when no AWS credentials can be found
 * (`defaultProvider`: the chain the SDK clients use)
 * @example
 * const api = new StacklineApiClient({ url, fetch: createSigV4Fetch() });
 */
export function createSigV4Fetch(options: SigV4FetchOptions = {}): typeof fetch {
  const send = options.fetch ?? globalThis.fetch;
  // The SDK's signer package (SigV4; SigV4a only for region '*'): the Lambda runtime ships it, so
  // the step-runner bundle imports it instead of carrying a copy of @smithy/signature-v4.
  let signer: SignatureV4MultiRegion | undefined;
  const signerFor = async (url: URL) => {
    if (signer) return signer;
    const region = options.region ?? regionOfApiUrl(url.href) ?? process.env.AWS_REGION;
    if (!region) {
      throw new ValidationError(
        `Cannot tell the AWS region of ${url.origin}: set AWS_REGION (or log in with --region).`,
      );
    }
    const credentials = options.credentials ?? (await import('@aws-sdk/credential-provider-node')).defaultProvider();
    signer = new SignatureV4MultiRegion({
      service: 'execute-api',
      region,
      credentials,
      sha256: Hash.bind(null, 'sha256'),
    });
    return signer;
  };
  return async (input, init = {}) => {
    const url = new URL(input instanceof Request ? input.url : String(input));
    const body = init.body === undefined || init.body === null ? undefined : String(init.body);
    const headers: Record<string, string> = { host: url.host };
    new Headers(init.headers).forEach((value, name) => {
      headers[name] = value;
    });
    const query: Record<string, string | string[]> = {};
    for (const [name, value] of url.searchParams) {
      const seen = query[name];
      query[name] = seen === undefined ? value : [...[seen].flat(), value];
    }
    let signed: { headers: Record<string, string> };
    try {
      signed = await (await signerFor(url)).sign({
        method: (init.method ?? 'GET').toUpperCase(),
        protocol: url.protocol,
        hostname: url.hostname,
        ...(url.port ? { port: Number(url.port) } : {}),
        path: url.pathname,
        query,
        headers,
        ...(body === undefined ? {} : { body }),
      });
    } catch (error) {
      if (error instanceof ValidationError) throw error;
      throw new AuthenticationError(
        `Cannot sign the request to ${url.origin} with AWS credentials: ${errorMessage(error)}. Configure the default chain (AWS_PROFILE, \`aws sso login\`, or a role).`,
        { cause: error },
      );
    }
    // fetch sets Host itself (and refuses to be told it).
    const { host: _host, ...sent } = signed.headers;
    return send(url, { ...init, headers: sent, ...(body === undefined ? {} : { body }) });
  };
}
