/**
 * `stackline serve` backed by an AWS stack (S3 + DynamoDB on moto), and a remote client in another
 * process with no AWS credentials at all: it reads through the API and loads an artifact's bytes
 * through the presigned S3 URL the API hands out.
 */
import { type ChildProcess, execFile, spawn } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Stackline } from '../../lib/client.ts';
import { runCli } from '../support/cli.ts';
import { type MotoServer, startMoto } from '../support/moto.ts';

const exec = promisify(execFile);
const BUCKET = 'stackline-remote-test';
const CREDENTIALS = { AWS_ACCESS_KEY_ID: 'test', AWS_SECRET_ACCESS_KEY: 'test', AWS_REGION: 'us-east-1' };

let moto: MotoServer;
let home: string;
let empty: string;
let server: ChildProcess;
let url: string;
let token: string;
const savedEnv: Record<string, string | undefined> = {};

beforeAll(async () => {
  for (const name of Object.keys(CREDENTIALS)) savedEnv[name] = process.env[name];
  Object.assign(process.env, CREDENTIALS);
  moto = await startMoto();
  home = await mkdtemp(join(tmpdir(), 'stackline-remote-aws-'));
  empty = await mkdtemp(join(tmpdir(), 'stackline-no-aws-'));
  const register = await runCli(
    home,
    ...['stack', 'register', 'emulated', '--artifact-store', 's3', '--bucket', BUCKET, '--prefix', 'sl'],
    ...['--metadata-store', 'dynamodb', '--table-prefix', 'sl-remote', '--region', 'us-east-1'],
    ...['--endpoint', moto.endpoint, '--json'],
  );
  expect(register.code).toBe(0);
  expect((await runCli(home, 'stack', 'provision', 'emulated')).code).toBe(0);
  const sl = await Stackline.open({ home, stack: 'emulated', actor: 'bob' });
  try {
    await sl.saveArtifact('holdout.rows', [{ sepal: 5.1, petal: 1.4 }], { tags: ['source:manual'] });
    await sl.saveArtifact('notes.readme', 'trained on iris, 150 rows');
  } finally {
    await sl.close();
  }
  token = (await runCli(home, 'token', 'create', '--role', 'member', '--name', 'nora', '--json')).json().token;
  server = spawn(process.execPath, ['bin/stackline.js', 'serve', '--stack', 'emulated', '--port', '0', '--json'], {
    env: { ...process.env, STACKLINE_HOME: home, NO_COLOR: '1' },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let out = '';
  let err = '';
  server.stderr!.on('data', (d) => (err += d));
  url = await new Promise<string>((resolve, reject) => {
    server.stdout!.on('data', (d) => {
      out += d;
      try {
        resolve(JSON.parse(out).url);
      } catch {
        // not the whole JSON object yet
      }
    });
    server.once('exit', (code) => reject(new Error(`stackline serve exited ${code}: ${err}`)));
  });
}, 120_000);

afterAll(async () => {
  if (server && server.exitCode === null) {
    const exited = new Promise((resolve) => server.once('exit', resolve));
    server.kill('SIGTERM');
    await exited;
  }
  await moto?.stop();
  for (const dir of [home, empty]) if (dir) await rm(dir, { recursive: true, force: true });
  for (const [name, value] of Object.entries(savedEnv)) {
    if (value === undefined) delete process.env[name];
    else process.env[name] = value;
  }
});

/** Runs the remote client with an environment that holds no AWS variable and no AWS config files. */
async function remoteClient(artifact: string) {
  const env = Object.fromEntries(Object.entries(process.env).filter(([name]) => !name.startsWith('AWS_')));
  const { stdout } = await exec(process.execPath, ['--import', 'tsx', 'test/notebook/remote-client.ts', artifact], {
    env: { ...env, HOME: empty, USERPROFILE: empty, STACKLINE_API: url, STACKLINE_TOKEN: token },
  });
  return JSON.parse(stdout);
}

describe('a remote client of an API on an S3 + DynamoDB stack (moto)', () => {
  it('loads a JSON artifact through a presigned S3 URL with no AWS credentials of its own', async () => {
    const result = await remoteClient('holdout.rows');
    expect(result.awsVariables).toEqual([]);
    expect(result.value).toEqual([{ sepal: 5.1, petal: 1.4 }]);
    const link = new URL(result.link);
    expect(link.origin).toBe(new URL(moto.endpoint).origin);
    expect(link.pathname).toMatch(new RegExp(`^/${BUCKET}/sl/`));
    expect(link.searchParams.get('X-Amz-Algorithm')).toBe('AWS4-HMAC-SHA256');
    expect(Number(link.searchParams.get('X-Amz-Expires'))).toBeLessThanOrEqual(900);
  });

  it('loads a string artifact the same way, and reads the stack registry through the API', async () => {
    const result = await remoteClient('notes.readme');
    expect(result.value).toBe('trained on iris, 150 rows');
    expect(result.stacks).toEqual(expect.arrayContaining(['default', 'emulated']));
  });
});
