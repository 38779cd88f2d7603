import { spawn } from 'node:child_process';
import { main } from '../../lib/cli/main.ts';

export interface CliResult {
  code: number;
  stdout: string;
  stderr: string;
  // biome-ignore lint/suspicious/noExplicitAny: test assertions index into parsed CLI output freely
  json<T = any>(): T;
}

/** Runs the CLI in-process against `home` (as STACKLINE_HOME) from the repository root. */
export async function runCli(home: string, ...argv: string[]): Promise<CliResult> {
  let stdout = '';
  let stderr = '';
  const code = await main(argv, {
    stdout: { write: (s: string) => (stdout += s) },
    stderr: { write: (s: string) => (stderr += s) },
    cwd: process.cwd(),
    env: { ...process.env, STACKLINE_HOME: home, NO_COLOR: '1' },
  });
  return { code, stdout, stderr, json: () => JSON.parse(stdout) };
}

/**
 * Starts the real `stackline` binary against `home` (as STACKLINE_HOME) from the repository root;
 * `exited` resolves with its exit code or signal and everything it printed.
 */
export function startCli(home: string, args: string[], env: Record<string, string> = {}) {
  const child = spawn(process.execPath, ['bin/stackline.js', ...args], {
    env: { ...process.env, STACKLINE_HOME: home, NO_COLOR: '1', ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let stdout = '';
  let stderr = '';
  child.stdout.on('data', (d) => (stdout += d));
  child.stderr.on('data', (d) => (stderr += d));
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null; stdout: string; stderr: string }>(
    (resolve) => child.on('exit', (code, signal) => resolve({ code, signal, stdout, stderr })),
  );
  return { child, exited };
}

/** Polls `check` every 25 ms until it holds; fails after `timeoutMs`. */
export async function waitFor(check: () => boolean, timeoutMs = 30_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!check()) {
    if (Date.now() > deadline) throw new Error('timed out waiting');
    await new Promise((r) => setTimeout(r, 25));
  }
}
