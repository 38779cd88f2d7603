import { statSync } from 'node:fs';
import { dirname } from 'node:path';
import pc from 'picocolors';
import { escapeForTerminal } from '../dsl/names.ts';
import { ValidationError } from '../errors.ts';
import type { StepExplanation } from '../runtime/explain.ts';

/** Where a command writes. Tests pass buffers; the binary passes process streams. */
export interface CliIo {
  stdout: { write(text: string): unknown; isTTY?: boolean };
  stderr: { write(text: string): unknown; isTTY?: boolean };
  cwd: string;
  env: NodeJS.ProcessEnv;
}

export function printJson(io: CliIo, value: unknown): void {
  io.stdout.write(`${JSON.stringify(value, null, 2)}\n`);
}

/** One line per step: `  train  miss since run_…: parameter trees: 1 → 25`. */
export function printExplanations(io: CliIo, explanations: StepExplanation[]): void {
  const width = Math.max(0, ...explanations.map((e) => e.stepId.length));
  for (const e of explanations) io.stdout.write(`  ${e.stepId.padEnd(width)}  ${e.summary}\n`);
}

export function colors(io: CliIo) {
  return pc.createColors(Boolean(io.stdout.isTTY) && !io.env.NO_COLOR);
}

/**
 * Renders rows as aligned columns (first row is the header). Cells are escaped: names, tags and
 * descriptions come from users, and must not reach the terminal as escape sequences.
 */
export function table(unsafeRows: string[][]): string {
  if (unsafeRows.length === 0) return '';
  const rows = unsafeRows.map((r) => r.map((cell) => escapeForTerminal(cell).replace(/[\r\n\t]/g, ' ')));
  const widths = rows[0]!.map((_, i) => Math.max(...rows.map((r) => (r[i] ?? '').length)));
  return `${rows
    .map((r) =>
      r
        .map((cell, i) => (i === r.length - 1 ? cell : cell.padEnd(widths[i]!)))
        .join('  ')
        .trimEnd(),
    )
    .join('\n')}\n`;
}

export function formatDuration(ms: number | undefined): string {
  if (ms === undefined) return '-';
  if (ms < 1000) return `${ms} ms`;
  if (ms < 60_000) return `${(ms / 1000).toFixed(1)} s`;
  return `${Math.floor(ms / 60_000)} min ${Math.round((ms % 60_000) / 1000)} s`;
}

/**
 * Checks an output file path before any work is done: the path must not be a directory, and its
 * directory must exist unless the command creates it (`createsParent`).
 * @throws ValidationError naming the option and the path.
 */
export function checkOutputFile(path: string, options: { option?: string; createsParent?: boolean } = {}): void {
  const option = options.option ?? '--out';
  const parent = dirname(path);
  if (!options.createsParent && !statSync(parent, { throwIfNoEntry: false })?.isDirectory()) {
    throw new ValidationError(`${option} ${path}: directory ${parent} does not exist; create it first.`, {
      context: { option, path },
    });
  }
  if (statSync(path, { throwIfNoEntry: false })?.isDirectory()) {
    throw new ValidationError(`${option} ${path} is a directory; give a file path inside it.`, {
      context: { option, path },
    });
  }
}
