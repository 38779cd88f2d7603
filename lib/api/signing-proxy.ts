/**
 * The dashboard for an API on AWS. API Gateway authorizes with AWS_IAM (SigV4), which a browser
 * cannot sign; this proxy, on 127.0.0.1 only, serves the dashboard's files and forwards every other
 * request to the API, signed with the user's AWS credentials (the SDK's default chain: environment,
 * profile, SSO, instance role). API Gateway then checks the signature and the caller's policies
 * exactly as for the CLI: the browser gets no more than its user may do.
 */
import type { AddressInfo } from 'node:net';
import { defaultProvider } from '@aws-sdk/credential-provider-node';
import { serve } from '@hono/node-server';
import { Hash } from '@smithy/core/serde';
import { SignatureV4 } from '@smithy/signature-v4';
import type { AwsCredentialIdentityProvider } from '@smithy/types';
import { Hono } from 'hono';
import { ValidationError } from '../errors.ts';
import { serveDashboard } from './static-dashboard.ts';

export interface SigningProxyOptions {
  /** The API's base URL, with its stage: `https://abc123.execute-api.eu-west-1.amazonaws.com/api/`. */
  apiUrl: string;
  /** The built dashboard (see `builtDashboardDirectory`). */
  dashboardDir: string;
  /** Default: from an `execute-api` host name, else `AWS_REGION`. */
  region?: string;
  /** Default: the SDK's default credential chain. */
  credentials?: AwsCredentialIdentityProvider;
  port?: number;
}

/** Request headers forwarded to the API (and signed); the rest (cookies, browser hints) stay here. */
const FORWARDED_REQUEST_HEADERS = ['content-type', 'accept'];
/** Response headers that describe the upstream connection or encoding, not the body we send on. */
const DROPPED_RESPONSE_HEADERS = ['content-encoding', 'content-length', 'transfer-encoding', 'connection'];

/** `abc.execute-api.eu-west-1.amazonaws.com` → `eu-west-1`. */
export function regionOfApiUrl(url: URL): string | undefined {
  return /\.execute-api\.([a-z0-9-]+)\.amazonaws\.com$/.exec(url.hostname)?.[1];
}

/**
 * A Hono app serving the dashboard at `/` and forwarding everything else to `apiUrl`, signed.
 * @throws ValidationError when the URL is not http(s) or no region can be found
 */
export function createSigningProxyApp(options: Omit<SigningProxyOptions, 'port'>): Hono {
  let api: URL;
  try {
    api = new URL(options.apiUrl.endsWith('/') ? options.apiUrl : `${options.apiUrl}/`);
  } catch {
    throw new ValidationError(
      `--api ${JSON.stringify(options.apiUrl)} is not a URL: give the API's URL with its stage.`,
    );
  }
  if (api.protocol !== 'https:' && api.protocol !== 'http:')
    throw new ValidationError(`--api ${options.apiUrl} must be an https:// URL.`);
  const region = options.region ?? regionOfApiUrl(api) ?? process.env.AWS_REGION;
  if (!region)
    throw new ValidationError(
      `No AWS region for ${api.hostname}: pass --region or set AWS_REGION (an execute-api host names it itself).`,
    );
  const signer = new SignatureV4({
    service: 'execute-api',
    region,
    credentials: options.credentials ?? defaultProvider(),
    sha256: Hash.bind(null, 'sha256'),
  });

  const app = new Hono();
  serveDashboard(app, options.dashboardDir);
  app.all('*', async (c) => {
    const incoming = new URL(c.req.url);
    const target = new URL(incoming.pathname.replace(/^\/+/, '') + incoming.search, api);
    const body = ['GET', 'HEAD'].includes(c.req.method) ? undefined : Buffer.from(await c.req.arrayBuffer());
    const headers: Record<string, string> = { host: target.host };
    for (const name of FORWARDED_REQUEST_HEADERS) {
      const value = c.req.header(name);
      if (value) headers[name] = value;
    }
    const query: Record<string, string | string[]> = {};
    for (const key of new Set(target.searchParams.keys())) {
      const values = target.searchParams.getAll(key);
      query[key] = values.length === 1 ? values[0]! : values;
    }
    const signed = await signer.sign({
      method: c.req.method,
      protocol: target.protocol,
      hostname: target.hostname,
      ...(target.port ? { port: Number(target.port) } : {}),
      path: decodeURIComponent(target.pathname),
      query,
      headers,
      ...(body ? { body } : {}),
    });
    const { host: _host, ...sendHeaders } = signed.headers;
    const res = await fetch(target, { method: c.req.method, headers: sendHeaders, ...(body ? { body } : {}) });
    const out = new Headers(res.headers);
    for (const name of DROPPED_RESPONSE_HEADERS) out.delete(name);
    return new Response(res.body, { status: res.status, headers: out });
  });
  return app;
}

/** Starts the proxy on 127.0.0.1 (`port` 0: any free port). */
export async function startSigningProxy(
  options: SigningProxyOptions,
): Promise<{ url: string; close(): Promise<void> }> {
  const app = createSigningProxyApp(options);
  const server = await new Promise<ReturnType<typeof serve>>((resolve, reject) => {
    const s = serve({ fetch: app.fetch, port: options.port ?? 0, hostname: '127.0.0.1' }, () => resolve(s));
    s.once('error', reject);
  });
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}/`,
    close: () => new Promise<void>((resolve, reject) => server.close((e) => (e ? reject(e) : resolve()))),
  };
}
