import { type ChildProcess, execFile, spawn } from 'node:child_process';
import { accessSync, constants } from 'node:fs';
import { createServer } from 'node:net';
import { delimiter, isAbsolute, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';

/** A running AWS emulator (or an externally provided endpoint) for integration tests. */
export interface MotoServer {
  /** `http://127.0.0.1:PORT`, or `AWS_ENDPOINT_URL` when that is set. */
  endpoint: string;
  port: number;
  /** PID of the spawned moto launcher; undefined when an external endpoint is used. */
  pid: number | undefined;
  /** Kills exactly the spawned process (no-op for an external endpoint). */
  stop(): Promise<void>;
  /** Wipes all emulator state (`POST /moto-api/reset`); no-op for an external endpoint. */
  reset(): Promise<void>;
}

export interface StartMotoOptions {
  /**
   * Switch on moto's Step Functions interpreter (`POST /moto-api/config
   * {"stepfunctions":{"execute_state_machine":true}}`) right after the server is ready, so
   * executions really run. Only state machines created after this point execute. Ignored for an
   * external endpoint (`AWS_ENDPOINT_URL`).
   */
  stepFunctionsExecution?: boolean;
}

/** Folder holding the `moto_ext` Python package (the patched moto launcher, see its README). */
export const MOTO_EXTENSION_DIR = fileURLToPath(new URL('../emulator', import.meta.url));

const MOTO_INSTALL_HINT =
  "Integration tests need the moto AWS emulator for python3: pip install 'moto[server]==5.2.1' " +
  '(or set AWS_ENDPOINT_URL to use LocalStack or another endpoint).';
const READY_TIMEOUT_MS = 30_000;

/**
 * Starts moto on a free port through Stackline's launcher (`python3 -m moto_ext`, in
 * test/emulator: moto 5.2.1 plus small patches — real Node.js Lambda invocations, Step Functions
 * fixes, serialized DynamoDB requests) and waits until it answers. When `AWS_ENDPOINT_URL` is set,
 * nothing is spawned and that endpoint is used instead (LocalStack or real AWS).
 * `STACKLINE_MOTO_PYTHON` selects another Python interpreter than `python3`.
 *
 * @example
 * const moto = await startMoto();
 * const s3 = new S3Client(awsTestClientConfig(moto.endpoint));
 * // ...
 * await moto.stop();
 *
 * @example
 * // Step Functions executions run, and their Lambda tasks run real Node code
 * const moto = await startMoto({ stepFunctionsExecution: true });
 */
export async function startMoto(options: StartMotoOptions = {}): Promise<MotoServer> {
  const external = process.env.AWS_ENDPOINT_URL;
  if (external) {
    const url = new URL(external);
    return {
      endpoint: external.replace(/\/$/, ''),
      port: Number(url.port || (url.protocol === 'https:' ? 443 : 80)),
      pid: undefined,
      stop: async () => {},
      reset: async () => {},
    };
  }

  const python = await findPythonWithMoto();
  const pythonPath = [MOTO_EXTENSION_DIR, process.env.PYTHONPATH].filter(Boolean).join(delimiter);

  // Another process may grab the port between our probe and moto's bind; retry with a new port.
  let lastError: unknown;
  for (let attempt = 0; attempt < 3; attempt++) {
    const port = await freePort();
    const endpoint = `http://127.0.0.1:${port}`;
    const child = spawn(python, ['-m', 'moto_ext', '--host', '127.0.0.1', '--port', String(port)], {
      // No __pycache__ in the source tree.
      env: { ...process.env, MOTO_PORT: String(port), PYTHONPATH: pythonPath, PYTHONDONTWRITEBYTECODE: '1' },
      stdio: ['ignore', 'ignore', 'pipe'],
    });
    let stderr = '';
    child.stderr?.setEncoding('utf8');
    child.stderr?.on('data', (chunk: string) => {
      stderr = (stderr + chunk).slice(-4000);
    });
    try {
      await waitUntilReady(endpoint, child, () => stderr);
      if (options.stepFunctionsExecution) {
        await postConfig(endpoint, { stepfunctions: { execute_state_machine: true } });
      }
    } catch (error) {
      lastError = error;
      await killAndWait(child);
      continue;
    }
    return {
      endpoint,
      port,
      pid: child.pid,
      stop: () => killAndWait(child),
      reset: async () => {
        const response = await fetch(`${endpoint}/moto-api/reset`, { method: 'POST' });
        if (!response.ok) throw new Error(`moto reset failed: HTTP ${response.status}`);
      },
    };
  }
  throw lastError;
}

/**
 * SDK v3 client configuration for the emulator: fixed region, dummy credentials, path-style S3.
 *
 * @example
 * new DynamoDBClient(awsTestClientConfig(moto.endpoint));
 */
export function awsTestClientConfig(endpoint: string) {
  return {
    endpoint,
    region: 'us-east-1',
    credentials: { accessKeyId: 'test', secretAccessKey: 'test' },
    forcePathStyle: true,
  };
}

/** The Python interpreter to run the launcher with; throws the install hint when moto is missing. */
async function findPythonWithMoto(): Promise<string> {
  const name = process.env.STACKLINE_MOTO_PYTHON || 'python3';
  const python = isAbsolute(name) ? name : findOnPath(name);
  if (!python) throw new Error(`${name} was not found on PATH. ${MOTO_INSTALL_HINT}`);
  try {
    await promisify(execFile)(python, ['-c', 'import moto'], { timeout: 30_000 });
  } catch (error) {
    const detail = (error as { stderr?: string }).stderr?.trim().split('\n').at(-1) ?? String(error);
    throw new Error(`${python} cannot import moto (${detail}). ${MOTO_INSTALL_HINT}`);
  }
  return python;
}

async function postConfig(endpoint: string, config: unknown): Promise<void> {
  const response = await fetch(`${endpoint}/moto-api/config`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify(config),
  });
  if (!response.ok) throw new Error(`moto config update failed: HTTP ${response.status}`);
}

function findOnPath(name: string): string | undefined {
  for (const dir of (process.env.PATH ?? '').split(delimiter)) {
    if (!dir) continue;
    const candidate = join(dir, name);
    try {
      accessSync(candidate, constants.X_OK);
      return candidate;
    } catch {
      // not here
    }
  }
  return undefined;
}

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.unref();
    server.on('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const address = server.address();
      const port = typeof address === 'object' && address ? address.port : 0;
      server.close(() => resolve(port));
    });
  });
}

async function waitUntilReady(endpoint: string, child: ChildProcess, stderr: () => string): Promise<void> {
  let exited: string | undefined;
  const onExit = (code: number | null, signal: NodeJS.Signals | null) => {
    exited = `exited with ${signal ?? code}`;
  };
  child.once('exit', onExit);
  const deadline = Date.now() + READY_TIMEOUT_MS;
  try {
    while (Date.now() < deadline) {
      if (exited) throw new Error(`moto (python3 -m moto_ext) ${exited} before it was ready:\n${stderr()}`);
      try {
        const response = await fetch(`${endpoint}/moto-api/config`, { signal: AbortSignal.timeout(2000) });
        if (response.ok) return;
      } catch {
        // not listening yet
      }
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
    throw new Error(`moto at ${endpoint} was not ready after ${READY_TIMEOUT_MS} ms:\n${stderr()}`);
  } finally {
    child.off('exit', onExit);
  }
}

function killAndWait(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return Promise.resolve();
  return new Promise((resolve) => {
    const timer = setTimeout(() => child.kill('SIGKILL'), 5000);
    child.once('exit', () => {
      clearTimeout(timer);
      resolve();
    });
    child.kill('SIGTERM');
  });
}

/** moto checks that a function's role exists; there is no IAM client installed, so use the query API. */
export async function createRole(endpoint: string, roleName: string): Promise<void> {
  const response = await fetch(endpoint, {
    method: 'POST',
    headers: {
      'content-type': 'application/x-www-form-urlencoded',
      // moto routes by the credential scope and does not verify signatures.
      authorization:
        'AWS4-HMAC-SHA256 Credential=test/20250101/us-east-1/iam/aws4_request, SignedHeaders=host, Signature=0',
    },
    body: new URLSearchParams({
      Action: 'CreateRole',
      Version: '2010-05-08',
      RoleName: roleName,
      AssumeRolePolicyDocument: JSON.stringify({
        Version: '2012-10-17',
        Statement: [{ Effect: 'Allow', Principal: { Service: 'lambda.amazonaws.com' }, Action: 'sts:AssumeRole' }],
      }),
    }),
  });
  if (!response.ok) throw new Error(`CreateRole failed: HTTP ${response.status} ${await response.text()}`);
}
