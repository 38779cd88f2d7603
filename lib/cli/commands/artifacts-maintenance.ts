import { collectArtifactGarbage, verifyArtifacts } from '../../artifacts/store-maintenance.ts';
import { ValidationError } from '../../errors.ts';
import type { StackRuntime } from '../../stacks/project.ts';
import { ExitCode } from '../exit-codes.ts';
import { type CliIo, printJson, table } from '../io.ts';
import { parseVersion } from './artifacts.ts';

/**
 * `stackline artifacts verify [name [version]]`: re-hashes the blobs of every (or the named)
 * artifact version. Exit 0 when all are intact, 3 (`ExitCode.Damaged`) when any is missing or
 * damaged — each listed, by artifact and version.
 */
export async function artifactsVerify(
  stack: StackRuntime,
  name: string | undefined,
  version: string | undefined,
  options: { json?: boolean },
  io: CliIo,
): Promise<number> {
  const report = await verifyArtifacts(stack, {
    ...(name !== undefined && { name }),
    ...(version !== undefined && { version: parseVersion(version) }),
  });
  if (options.json) printJson(io, report);
  else {
    if (report.damaged.length > 0) {
      const rows = [['ARTIFACT', 'VERSION', 'PROBLEM', 'BLOB']];
      for (const d of report.damaged) rows.push([d.artifact, `v${d.version}`, d.problem, d.contentHash]);
      io.stdout.write(table(rows));
    }
    io.stdout.write(
      `${report.versionsChecked} versions, ${report.blobsChecked} blobs checked: ` +
        (report.damaged.length === 0
          ? 'all intact.\n'
          : `${report.damaged.length} damaged. Re-run the steps that produced them to rewrite their bytes.\n`),
    );
  }
  return report.damaged.length === 0 ? ExitCode.Ok : ExitCode.Damaged;
}

const UNIT_MS = { s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000 } as const;

/** `30s`, `10m`, `1h`, `7d` → milliseconds. */
export function parseGrace(value: string): number {
  const match = /^(\d+)([smhd])$/.exec(value);
  if (!match) {
    throw new ValidationError(
      `--grace ${JSON.stringify(value)} is not a duration: use a number and s, m, h or d (1h).`,
      {
        context: { option: '--grace', value },
      },
    );
  }
  return Number(match[1]) * UNIT_MS[match[2] as keyof typeof UNIT_MS];
}

/** `stackline artifacts gc [--grace 1h] [--dry-run]`: removes blobs no artifact version needs. */
export async function artifactsGc(
  stack: StackRuntime,
  options: { grace: string; dryRun?: boolean; json?: boolean },
  io: CliIo,
): Promise<void> {
  const result = await collectArtifactGarbage(stack, {
    graceMs: parseGrace(options.grace),
    ...(options.dryRun && { dryRun: true }),
  });
  if (options.json) return printJson(io, { ...result, dryRun: Boolean(options.dryRun) });
  io.stdout.write(
    `${options.dryRun ? 'Would remove' : 'Removed'} ${result.removed.length} unreferenced blobs ` +
      `(${result.removedBytes} bytes) and ${result.tempFilesRemoved} abandoned temp files; kept ${result.kept} blobs.\n`,
  );
}
