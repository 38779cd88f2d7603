import { execFile } from 'node:child_process';
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runCli } from '../support/cli.ts';

/**
 * Every example in README.md runs: each ```ts block as a script and each `npx stackline …` line of
 * each ```sh block through the CLI, in document order against one fresh project, so later examples
 * see what earlier ones made. Other shell lines must be the README's known commands (run by CI and
 * by test/e2e), so an example cannot silently rot.
 */
const exec = promisify(execFile);
const KNOWN_COMMANDS = new Set(['npm ci && npm run scenario', 'npm ci && npm test']);

type Block = { lang: 'ts' | 'sh'; code: string; line: number };

function readmeBlocks(markdown: string): Block[] {
  const blocks: Block[] = [];
  const pattern = /^```(\w*)\n([\s\S]*?)^```$/gm;
  for (let match = pattern.exec(markdown); match; match = pattern.exec(markdown)) {
    const lang = match[1];
    const line = markdown.slice(0, match.index).split('\n').length;
    if (lang === 'ts' || lang === 'sh') blocks.push({ lang, code: match[2]!, line });
    else
      throw new Error(`README.md line ${line}: a code block tagged "${lang}" is neither ts nor sh, so no test runs it`);
  }
  return blocks;
}

/** Splits a command line like a POSIX shell would for simple quoting. */
function shellWords(line: string): string[] {
  const words: string[] = [];
  const pattern = /"([^"]*)"|'([^']*)'|(\S+)/g;
  for (let m = pattern.exec(line); m; m = pattern.exec(line)) words.push(m[1] ?? m[2] ?? m[3]!);
  return words;
}

let home: string;
let scratch: string;
beforeAll(async () => {
  home = await mkdtemp(join(tmpdir(), 'stackline-readme-'));
  // Inside the repository so `import … from 'stackline'` resolves to this package.
  scratch = join(process.cwd(), 'test', '.readme-tmp');
  await mkdir(scratch, { recursive: true });
});
afterAll(async () => {
  await rm(home, { recursive: true, force: true });
  await rm(scratch, { recursive: true, force: true });
});

describe('README examples', async () => {
  const blocks = readmeBlocks(await readFile('README.md', 'utf8'));

  it('has examples to run', () => {
    expect(blocks.filter((b) => b.lang === 'ts').length).toBeGreaterThanOrEqual(2);
    expect(blocks.filter((b) => b.lang === 'sh').length).toBeGreaterThanOrEqual(3);
  });

  for (const block of blocks) {
    it(`runs the ${block.lang} example at README.md line ${block.line}`, async () => {
      if (block.lang === 'ts') {
        const file = join(scratch, `line-${block.line}.ts`);
        await writeFile(file, block.code);
        const { stdout } = await exec(process.execPath, ['--import', 'tsx', file], {
          env: { ...process.env, STACKLINE_HOME: home, NO_COLOR: '1' },
        });
        // When every console.log line ends in `// <output>`, the example must print exactly that.
        const logs = block.code.split('\n').filter((l) => /^\s*console\.log\(/.test(l));
        const promised = logs.map((l) => /\);\s*\/\/ (.*)$/.exec(l)?.[1]);
        if (logs.length > 0 && promised.every((p) => p !== undefined)) expect(stdout).toBe(`${promised.join('\n')}\n`);
        return;
      }
      for (const line of block.code.split('\n').filter((l) => l.trim())) {
        if (line.startsWith('npx stackline ')) {
          const result = await runCli(home, ...shellWords(line.slice('npx stackline '.length)));
          expect(result.code, `${line}\n${result.stderr}`).toBe(0);
        } else {
          expect(KNOWN_COMMANDS, `README.md line ${block.line}: "${line}" is not run by any test`).toContain(line);
        }
      }
    });
  }
});
