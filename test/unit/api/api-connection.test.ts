import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { connectionFor, resolveApiConnection, saveApiConnection } from '../../../lib/stacks/api-connection.ts';
import { runCli } from '../../support/cli.ts';

let home: string;
beforeAll(async () => {
  home = await mkdtemp(join(tmpdir(), 'stackline-connection-'));
});
afterAll(() => rm(home, { recursive: true, force: true }));

describe('API connections', () => {
  it('uses SigV4 for API Gateway URLs and a bearer token when one is given', () => {
    expect(connectionFor('https://abc123.execute-api.eu-west-1.amazonaws.com/api/')).toEqual({
      url: 'https://abc123.execute-api.eu-west-1.amazonaws.com/api',
      auth: 'sigv4',
    });
    expect(connectionFor('http://127.0.0.1:8787', { token: 'slt_x' })).toEqual({
      url: 'http://127.0.0.1:8787',
      auth: 'bearer',
      token: 'slt_x',
    });
    expect(connectionFor('https://ml.example.com', { sigv4: true, region: 'eu-west-1' })).toEqual({
      url: 'https://ml.example.com',
      auth: 'sigv4',
      region: 'eu-west-1',
    });
  });

  it('refuses a local URL without a token, and what is not an http(s) URL, saying what to pass', () => {
    expect(() => connectionFor('http://127.0.0.1:8787')).toThrow(/needs a bearer token: pass --token/);
    expect(() => connectionFor('ftp://x')).toThrow(/not an http\(s\) URL/);
    expect(() => connectionFor('nonsense')).toThrow(/is not a URL/);
  });

  it('prefers --api over STACKLINE_API_URL over the saved login, and is absent with none', () => {
    expect(resolveApiConnection(home, {})).toBeUndefined();
    saveApiConnection(home, { url: 'http://saved:1', auth: 'bearer', token: 'slt_saved' });
    expect(resolveApiConnection(home, {})?.url).toBe('http://saved:1');
    expect(resolveApiConnection(home, { STACKLINE_API_URL: 'http://saved:1' })).toMatchObject({ token: 'slt_saved' });
    expect(
      resolveApiConnection(home, { STACKLINE_API_URL: 'http://env:2', STACKLINE_TOKEN: 'slt_env' }, 'http://flag:3'),
    ).toEqual({ url: 'http://flag:3', auth: 'bearer', token: 'slt_env' });
  });

  it('`stackline login` with a bad URL exits 2 with one line and saves nothing', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'stackline-login-'));
    try {
      const result = await runCli(dir, 'login', 'not a url');
      expect(result.code).toBe(2);
      expect(result.stderr.trim().split('\n')[0]).toMatch(/^error: "not a url" is not a URL/);
      expect(resolveApiConnection(dir, {})).toBeUndefined();
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});
