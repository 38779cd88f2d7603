import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { readFile, writeFile } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { pathToFileURL } from 'node:url';

export interface RecordedRun {
  code: number | null;
  stdout: string;
  stderr: string;
  /** The URL of every module loaded, in order, on any thread (hooks registered later pass them on). */
  urls: string[];
}

/**
 * Runs the real binary (`bin/stackline.js`, so `dist/`) with a module hook, registered first
 * through `--import`, that records the URL of every module loaded. `dir` holds the hook and its log;
 * STACKLINE_HOME is `home`; `env` adds to the environment.
 */
export async function runRecordingLoads(
  args: string[],
  { dir, home, cwd = process.cwd(), env = {} }: { dir: string; home: string; cwd?: string; env?: NodeJS.ProcessEnv },
): Promise<RecordedRun> {
  const log = join(dir, `loaded-${Math.random().toString(36).slice(2)}.txt`);
  const hooks = join(dir, 'record-loads.mjs');
  await writeFile(
    hooks,
    `import { appendFileSync } from 'node:fs';
export async function load(url, context, next) {
  appendFileSync(process.env.STACKLINE_TEST_LOAD_LOG, url + '\\n');
  return next(url, context);
}
`,
  );
  const register = join(dir, 'register.mjs');
  await writeFile(
    register,
    `import { register } from 'node:module';\nregister(${JSON.stringify(pathToFileURL(hooks).href)});\n`,
  );
  let stdout = '';
  let stderr = '';
  const code = await new Promise<number | null>((done) => {
    const child = spawn(
      process.execPath,
      ['--import', pathToFileURL(register).href, resolve('bin/stackline.js'), ...args],
      {
        cwd,
        env: { ...process.env, ...env, STACKLINE_HOME: home, NO_COLOR: '1', STACKLINE_TEST_LOAD_LOG: log },
        stdio: ['ignore', 'pipe', 'pipe'],
      },
    );
    child.stdout.on('data', (d) => (stdout += d));
    child.stderr.on('data', (d) => (stderr += d));
    child.on('exit', (c) => done(c));
  });
  const urls = existsSync(log) ? (await readFile(log, 'utf8')).split('\n').filter(Boolean) : [];
  return { code, stdout, stderr, urls };
}

/** The npm package a module URL belongs to, if any. */
export const packageOf = (url: string) => /\/node_modules\/((?:@[^/]+\/)?[^/]+)\//.exec(url)?.[1];
