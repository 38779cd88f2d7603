/**
 * `stackline dashboard --api`: the local proxy serves the dashboard and forwards API calls signed
 * with SigV4. API Gateway cannot run here, so a local HTTP server stands in for it and checks each
 * signature the way API Gateway does: it recomputes it from the request it received (the signed
 * headers, the path, the query, the body) with the caller's secret key and compares.
 */
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { Hash } from '@smithy/core/serde';
import { SignatureV4 } from '@smithy/signature-v4';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createSigningProxyApp, regionOfApiUrl, startSigningProxy } from '../../../lib/api/signing-proxy.ts';
import { builtDashboardDirectory } from '../../../lib/api/static-dashboard.ts';

const KEYS = { accessKeyId: 'AKIDEXAMPLE', secretAccessKey: 'wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY' };
const REGION = 'eu-west-1';

let upstream: Server;
let apiUrl: string;
const received: Array<{ method: string; path: string; body: string; valid: boolean }> = [];

/** What API Gateway does with AWS_IAM: recompute the signature from the request and compare. */
async function signatureIsValid(req: import('node:http').IncomingMessage, body: string): Promise<boolean> {
  const authorization = String(req.headers.authorization ?? '');
  const signedHeaders = /SignedHeaders=([^,]+)/.exec(authorization)?.[1]?.split(';') ?? [];
  const amzDate = String(req.headers['x-amz-date'] ?? '');
  const date = new Date(amzDate.replace(/^(\d{4})(\d{2})(\d{2})T(\d{2})(\d{2})(\d{2})Z$/, '$1-$2-$3T$4:$5:$6Z'));
  const url = new URL(req.url!, `http://${req.headers.host}`);
  const query: Record<string, string> = {};
  for (const [k, v] of url.searchParams) query[k] = v;
  const headers = Object.fromEntries(signedHeaders.map((h) => [h, String(req.headers[h])]));
  const signer = new SignatureV4({
    service: 'execute-api',
    region: REGION,
    credentials: KEYS,
    sha256: Hash.bind(null, 'sha256'),
  });
  const expected = await signer.sign(
    {
      method: req.method!,
      protocol: 'http:',
      hostname: url.hostname,
      port: Number(url.port),
      path: url.pathname,
      query,
      headers,
      ...(body ? { body } : {}),
    },
    { signingDate: date },
  );
  return signedHeaders.includes('host') && expected.headers.authorization === authorization;
}

beforeAll(async () => {
  expect(builtDashboardDirectory(), 'the dashboard is built by `npm run build`').toBeDefined();
  upstream = createServer(async (req, res) => {
    let body = '';
    for await (const chunk of req) body += chunk;
    const valid = await signatureIsValid(req, body);
    received.push({ method: req.method!, path: req.url!, body, valid });
    res.writeHead(valid ? 200 : 403, { 'content-type': 'application/json' });
    res.end(
      JSON.stringify(
        valid ? { path: req.url, body } : { message: 'The request signature we calculated does not match' },
      ),
    );
  });
  await new Promise<void>((resolve) => upstream.listen(0, '127.0.0.1', resolve));
  apiUrl = `http://127.0.0.1:${(upstream.address() as AddressInfo).port}/api/`;
});
afterAll(() => new Promise<void>((resolve) => upstream.close(() => resolve())));

const proxyApp = (credentials = KEYS) =>
  createSigningProxyApp({
    apiUrl,
    region: REGION,
    dashboardDir: builtDashboardDirectory()!,
    credentials: async () => credentials,
  });

describe('the signing proxy', () => {
  it('serves the dashboard itself, without calling the API', async () => {
    const before = received.length;
    const res = await proxyApp().request('/');
    expect(res.status).toBe(200);
    expect(await res.text()).toContain('<div id="root">');
    expect(received.length).toBe(before);
  });

  it('forwards API calls under the stage path, signed so the signature verifies', async () => {
    const res = await proxyApp().request('/runs?status=completed&limit=5');
    expect(res.status).toBe(200);
    expect(await res.json()).toEqual({ path: '/api/runs?status=completed&limit=5', body: '' });
    expect(received.at(-1)).toMatchObject({ method: 'GET', valid: true });
  });

  it('signs the body of a promotion too', async () => {
    const body = JSON.stringify({ expectedHolder: 2, reason: 'better F1' });
    const res = await proxyApp().request('/models/iris_classifier/versions/3/production', {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body,
    });
    expect(res.status).toBe(200);
    expect(received.at(-1)).toEqual({
      method: 'POST',
      path: '/api/models/iris_classifier/versions/3/production',
      body,
      valid: true,
    });
  });

  it("passes the API's refusal through when the credentials are not the caller's", async () => {
    const res = await proxyApp({ ...KEYS, secretAccessKey: 'not-the-key' }).request('/runs');
    expect(res.status).toBe(403);
    expect(received.at(-1)!.valid).toBe(false);
  });

  it('takes credentials from the default chain (here: the environment) and listens on 127.0.0.1 only', async () => {
    const saved = { ...process.env };
    Object.assign(process.env, { AWS_ACCESS_KEY_ID: KEYS.accessKeyId, AWS_SECRET_ACCESS_KEY: KEYS.secretAccessKey });
    delete process.env.AWS_SESSION_TOKEN;
    delete process.env.AWS_PROFILE;
    const proxy = await startSigningProxy({ apiUrl, region: REGION, dashboardDir: builtDashboardDirectory()! });
    try {
      expect(proxy.url).toMatch(/^http:\/\/127\.0\.0\.1:\d+\/$/);
      const res = await fetch(`${proxy.url}whoami`);
      expect(res.status).toBe(200);
      expect(received.at(-1)).toMatchObject({ path: '/api/whoami', valid: true });
    } finally {
      await proxy.close();
      process.env = saved;
    }
  });

  it('finds the region in an execute-api host name, and refuses a URL it cannot use', () => {
    expect(regionOfApiUrl(new URL('https://abc123.execute-api.eu-central-1.amazonaws.com/api/'))).toBe('eu-central-1');
    expect(() => createSigningProxyApp({ apiUrl: 'ftp://x/', dashboardDir: '.', region: REGION })).toThrow(
      /must be an https:\/\/ URL/,
    );
    const saved = process.env.AWS_REGION;
    delete process.env.AWS_REGION;
    try {
      expect(() => createSigningProxyApp({ apiUrl: 'https://api.example.com/', dashboardDir: '.' })).toThrow(
        /No AWS region for api.example.com: pass --region or set AWS_REGION/,
      );
    } finally {
      if (saved !== undefined) process.env.AWS_REGION = saved;
    }
  });
});
