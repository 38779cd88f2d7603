/**
 * The SigV4 signer the CLI, notebooks and the step runner use against API Gateway (AWS_IAM). The
 * signature is checked with an independent implementation of the SigV4 algorithm (node:crypto),
 * so a request API Gateway would refuse fails here. Error paths use a credential provider that fails.
 */
import { createHash, createHmac } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { promoteThroughApi, resolveRunnerApiUrl } from '../../../lib/api/runner-promotion.ts';
import { createSigV4Fetch, regionOfApiUrl } from '../../../lib/api/sigv4-fetch.ts';
import { AuthenticationError } from '../../../lib/errors.ts';
import { PromotionRefusedError, StageHeldError } from '../../../lib/metadata/promotion-rules.ts';

const URL_ = 'https://abc123.execute-api.eu-west-1.amazonaws.com/api';
const credentials = async () => ({
  accessKeyId: 'AKIDEXAMPLE',
  secretAccessKey: 'wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY',
  sessionToken: 'session-token',
});

interface Sent {
  url: URL;
  init: RequestInit;
}
function recorder(status = 200, body: unknown = { changes: [] }) {
  const sent: Sent[] = [];
  const fetchImpl = (async (url: URL, init: RequestInit) => {
    sent.push({ url, init });
    return new Response(JSON.stringify(body), { status, headers: { 'content-type': 'application/json' } });
  }) as unknown as typeof fetch;
  return { sent, fetchImpl };
}

const sha256 = (data: string) => createHash('sha256').update(data).digest('hex');
const hmac = (key: string | Buffer, data: string) => createHmac('sha256', key).update(data).digest();
const encode = (s: string) =>
  encodeURIComponent(s).replace(/[!'()*]/g, (c) => `%${c.charCodeAt(0).toString(16).toUpperCase()}`);

/** SigV4 as AWS documents it, independently of @smithy/signature-v4: the signature API Gateway expects. */
function expectedSignature(sent: Sent, secret: string): string {
  const headers = new Headers(sent.init.headers);
  const auth = headers.get('authorization')!;
  const [, scope, signedHeaders] = /Credential=[^/]+\/([^,]+), SignedHeaders=([^,]+), Signature=/.exec(auth)!;
  const [date, region, service] = scope!.split('/');
  const values = (name: string) => (name === 'host' ? sent.url.host : headers.get(name)!.trim());
  const query = [...sent.url.searchParams]
    .map(([k, v]) => [encode(k), encode(v)])
    .sort(([a, x], [b, y]) => (a! < b! ? -1 : a! > b! ? 1 : x! < y! ? -1 : 1))
    .map(([k, v]) => `${k}=${v}`)
    .join('&');
  const canonical = [
    sent.init.method,
    sent.url.pathname.split('/').map(encode).join('/'),
    query,
    ...signedHeaders!.split(';').map((name) => `${name}:${values(name)}`),
    '',
    signedHeaders,
    sha256(String(sent.init.body ?? '')),
  ].join('\n');
  const stringToSign = ['AWS4-HMAC-SHA256', headers.get('x-amz-date'), scope, sha256(canonical)].join('\n');
  let key = hmac(`AWS4${secret}`, date!);
  for (const part of [region!, service!, 'aws4_request']) key = hmac(key, part);
  return createHmac('sha256', key).update(stringToSign).digest('hex');
}

describe('createSigV4Fetch', () => {
  it('signs method, path, query, headers and body for execute-api in the URL’s region', async () => {
    const { sent, fetchImpl } = recorder();
    const signed = createSigV4Fetch({ credentials, fetch: fetchImpl });
    await signed(`${URL_}/models/iris/versions/3/production?reason=better%20model&b=2`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', 'x-stackline-run': 'run_123' },
      body: JSON.stringify({ expectedHolder: 2 }),
    });
    const headers = new Headers(sent[0]!.init.headers);
    const auth = headers.get('authorization')!;
    expect(auth).toMatch(
      /^AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE\/\d{8}\/eu-west-1\/execute-api\/aws4_request, SignedHeaders=[^,]*host[^,]*x-stackline-run[^,]*, Signature=[0-9a-f]{64}$/,
    );
    expect(headers.get('x-amz-security-token')).toBe('session-token');
    const signature = /Signature=([0-9a-f]{64})/.exec(auth)![1];
    expect(signature).toBe(expectedSignature(sent[0]!, 'wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY'));
  });

  it('produces a signature that no longer verifies when the body is changed after signing', async () => {
    const { sent, fetchImpl } = recorder();
    await createSigV4Fetch({ credentials, fetch: fetchImpl })(`${URL_}/runs`, {
      method: 'POST',
      body: '{"pipeline":"iris_training"}',
    });
    const tampered = { ...sent[0]!, init: { ...sent[0]!.init, body: '{"pipeline":"other"}' } };
    const signature = /Signature=([0-9a-f]{64})/.exec(new Headers(sent[0]!.init.headers).get('authorization')!)![1];
    expect(expectedSignature(tampered, 'wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY')).not.toBe(signature);
  });

  it('reads the region of API Gateway URLs, and needs one for other hosts', async () => {
    expect(regionOfApiUrl('https://x1.execute-api.us-east-2.amazonaws.com/api')).toBe('us-east-2');
    expect(regionOfApiUrl('http://127.0.0.1:8787')).toBeUndefined();
    const { fetchImpl } = recorder();
    const saved = process.env.AWS_REGION;
    delete process.env.AWS_REGION;
    try {
      await expect(createSigV4Fetch({ credentials, fetch: fetchImpl })('http://127.0.0.1:1/runs')).rejects.toThrow(
        /AWS region of http:\/\/127\.0\.0\.1:1: set AWS_REGION/,
      );
    } finally {
      if (saved !== undefined) process.env.AWS_REGION = saved;
    }
  });

  it('fails with an AuthenticationError naming what to configure when there are no credentials', async () => {
    const { sent, fetchImpl } = recorder();
    const none = async () => {
      throw new Error('Could not load credentials from any providers');
    };
    const attempt = createSigV4Fetch({ credentials: none, fetch: fetchImpl })(`${URL_}/runs`);
    await expect(attempt).rejects.toBeInstanceOf(AuthenticationError);
    await expect(attempt).rejects.toThrow(/Could not load credentials.*AWS_PROFILE/);
    expect(sent).toHaveLength(0);
  });
});

describe('promoteThroughApi (step code on AWS)', () => {
  it('sends production to its own route and other stages to /stage, naming the run', async () => {
    const { sent, fetchImpl } = recorder();
    const sign = createSigV4Fetch({ credentials, fetch: fetchImpl });
    await promoteThroughApi(
      URL_,
      'run_42',
      { model: 'iris', version: 3, stage: 'production', options: { expectedHolder: 2 } },
      sign,
    );
    await promoteThroughApi(URL_, 'run_42', { model: 'iris', version: 4, stage: 'staging', options: {} }, sign);
    expect(sent.map((s) => [s.init.method, s.url.pathname, String(s.init.body)])).toEqual([
      ['POST', '/api/models/iris/versions/3/production', '{"expectedHolder":2}'],
      ['POST', '/api/models/iris/versions/4/stage', '{"stage":"staging"}'],
    ]);
    for (const s of sent) expect(new Headers(s.init.headers).get('x-stackline-run')).toBe('run_42');
  });

  it('turns a 409 naming the holder into StageHeldError, and a refused policy into PromotionRefusedError', async () => {
    const held = recorder(409, { error: { status: 409, code: 'CONFLICT', message: 'version 2 holds', holder: 2 } });
    const refused = recorder(409, { error: { status: 409, code: 'CONFLICT', message: 'not a promoter' } });
    const request = { model: 'iris', version: 3, stage: 'production' as const, options: {} };
    await expect(promoteThroughApi(URL_, 'r', request, held.fetchImpl)).rejects.toBeInstanceOf(StageHeldError);
    const error = await promoteThroughApi(URL_, 'r', request, refused.fetchImpl).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(PromotionRefusedError);
    expect(error).not.toBeInstanceOf(StageHeldError);
  });
});

describe('resolveRunnerApiUrl', () => {
  it('takes STACKLINE_API_URL as it is, and names both variables when neither is set', async () => {
    await expect(resolveRunnerApiUrl({ STACKLINE_API_URL: URL_ })).resolves.toBe(URL_);
    await expect(resolveRunnerApiUrl({})).rejects.toThrow(/STACKLINE_API_URL or STACKLINE_API_URL_PARAMETER/);
  });
});
