import { type ChildProcess, spawn } from 'node:child_process';
import { accessSync, constants } from 'node:fs';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { delimiter, join } from 'node:path';

/** A running AWS emulator (or an externally provided endpoint) for integration tests. */
export interface MotoServer {
  /** `http://127.0.0.1:PORT`, or `AWS_ENDPOINT_URL` when that is set. */
  endpoint: string;
  port: number;
  /** PID of the spawned `moto_server`; undefined when an external endpoint is used. */
  pid: number | undefined;
  /** Kills exactly the spawned process (no-op for an external endpoint). */
  stop(): Promise<void>;
  /** Wipes all emulator state (`POST /moto-api/reset`); no-op for an external endpoint. */
  reset(): Promise<void>;
}

const MOTO_INSTALL_HINT =
  "moto_server was not found on PATH. Integration tests need the moto AWS emulator: pip install 'moto[server]==5.2.1' " +
  '(or set AWS_ENDPOINT_URL to use LocalStack or another endpoint).';
const READY_TIMEOUT_MS = 30_000;

/**
 * Loaded into moto_server through `sitecustomize` (Python imports it at start-up when it is on
 * PYTHONPATH). moto 5.2.1 serves requests on several threads but does not isolate DynamoDB calls
 * from each other: two concurrent TransactWriteItems can both pass their conditions and both write
 * (measured: 50 racing conditional version allocations produced duplicate numbers). Real DynamoDB
 * serializes conflicting transactions, so the emulator must too: one lock around every DynamoDB
 * request. Other services keep their threads (Step Functions calls back into the server).
 */
const SERIALIZE_DYNAMODB_PATCH = `
import threading

try:
    from moto.dynamodb.responses import DynamoHandler
except Exception:  # not moto_server, or moto without DynamoDB: nothing to patch
    DynamoHandler = None

if DynamoHandler is not None:
    _stackline_lock = threading.RLock()
    _stackline_call_action = DynamoHandler.call_action

    def _serialized_call_action(self):
        with _stackline_lock:
            return _stackline_call_action(self)

    DynamoHandler.call_action = _serialized_call_action
`;

/**
 * Starts `moto_server` on a free port and waits until it answers. When `AWS_ENDPOINT_URL` is set,
 * nothing is spawned and that endpoint is used instead (LocalStack or real AWS).
 *
 * @example
 * const moto = await startMoto();
 * const s3 = new S3Client(awsTestClientConfig(moto.endpoint));
 * // ...
 * await moto.stop();
 */
export async function startMoto(): Promise<MotoServer> {
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

  const executable = findOnPath('moto_server');
  if (!executable) throw new Error(MOTO_INSTALL_HINT);

  const patchDir = await mkdtemp(join(tmpdir(), 'stackline-moto-'));
  await writeFile(join(patchDir, 'sitecustomize.py'), SERIALIZE_DYNAMODB_PATCH);
  const pythonPath = [patchDir, process.env.PYTHONPATH].filter(Boolean).join(delimiter);
  const removePatchDir = () => rm(patchDir, { recursive: true, force: true });

  // Another process may grab the port between our probe and moto's bind; retry with a new port.
  let lastError: unknown;
  for (let attempt = 0; attempt < 3; attempt++) {
    const port = await freePort();
    const endpoint = `http://127.0.0.1:${port}`;
    const child = spawn(executable, ['-H', '127.0.0.1', '-p', String(port)], {
      env: { ...process.env, MOTO_PORT: String(port), PYTHONPATH: pythonPath },
      stdio: ['ignore', 'ignore', 'pipe'],
    });
    let stderr = '';
    child.stderr?.setEncoding('utf8');
    child.stderr?.on('data', (chunk: string) => {
      stderr = (stderr + chunk).slice(-4000);
    });
    try {
      await waitUntilReady(endpoint, child, () => stderr);
    } catch (error) {
      lastError = error;
      await killAndWait(child);
      continue;
    }
    return {
      endpoint,
      port,
      pid: child.pid,
      stop: async () => {
        await killAndWait(child);
        await removePatchDir();
      },
      reset: async () => {
        const response = await fetch(`${endpoint}/moto-api/reset`, { method: 'POST' });
        if (!response.ok) throw new Error(`moto reset failed: HTTP ${response.status}`);
      },
    };
  }
  await removePatchDir();
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
      if (exited) throw new Error(`moto_server ${exited} before it was ready:\n${stderr()}`);
      try {
        const response = await fetch(`${endpoint}/moto-api/config`, { signal: AbortSignal.timeout(2000) });
        if (response.ok) return;
      } catch {
        // not listening yet
      }
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
    throw new Error(`moto_server at ${endpoint} was not ready after ${READY_TIMEOUT_MS} ms:\n${stderr()}`);
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
