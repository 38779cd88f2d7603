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
