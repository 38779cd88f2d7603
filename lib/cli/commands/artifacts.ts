import { randomUUID } from 'node:crypto';
import { createWriteStream } from 'node:fs';
import { rename, rm } from 'node:fs/promises';
import { resolve } from 'node:path';
import { pipeline as pipe } from 'node:stream/promises';
import { loadArtifactVersion, nameArtifactVersion } from '../../artifacts/load-artifact.ts';
import { ValidationError } from '../../errors.ts';
import type { StackRuntime } from '../../stacks/project.ts';
import { type CliIo, checkOutputFile, printJson, table } from '../io.ts';

export function parseVersion(value: string | undefined): number | 'latest' {
  if (value === undefined || value === 'latest') return 'latest';
  if (!/^\d+$/.test(value) || Number(value) < 1)
    throw new ValidationError(`Version ${JSON.stringify(value)} is not a version number (1, 2, …) or "latest".`);
  return Number(value);
}

export async function artifactsList(
  stack: StackRuntime,
  options: { tag?: string; limit: number; json?: boolean },
  io: CliIo,
) {
  const page = await stack.metadata.artifacts.list({
    limit: options.limit,
    ...(options.tag ? { tag: options.tag } : {}),
  });
  if (options.json) return printJson(io, { artifacts: page.items, nextCursor: page.nextCursor ?? null });
  const rows = [['ARTIFACT', 'LATEST', 'VERSIONS', 'UPDATED', 'TAGS']];
  for (const a of page.items)
    rows.push([
      a.name,
      `v${a.latestVersion}`,
      String(a.versionCount),
      a.updatedAt.slice(0, 19).replace('T', ' '),
      a.tags.join(','),
    ]);
  io.stdout.write(page.items.length ? table(rows) : 'No artifacts yet.\n');
}

export async function artifactsVersions(
  stack: StackRuntime,
  name: string,
  options: { tag?: string; limit: number; json?: boolean },
  io: CliIo,
) {
  const page = await stack.metadata.artifacts.listVersions(name, {
    limit: options.limit,
    ...(options.tag ? { tag: options.tag } : {}),
  });
  if (options.json) return printJson(io, { versions: page.items, nextCursor: page.nextCursor ?? null });
  const rows = [['VERSION', 'SIZE', 'TYPE', 'HASH', 'CREATED', 'RUN']];
  for (const v of page.items)
    rows.push([
      `v${v.version}`,
      String(v.size),
      v.dataType,
      v.contentHash.slice(7, 19),
      v.createdAt.slice(0, 19).replace('T', ' '),
      v.producerRunId ?? '-',
    ]);
  io.stdout.write(page.items.length ? table(rows) : `No versions of "${name}".\n`);
}

export async function artifactsShow(
  stack: StackRuntime,
  name: string,
  version: string | undefined,
  options: { json?: boolean },
  io: CliIo,
) {
  const v = await stack.metadata.artifacts.getVersion(name, parseVersion(version));
  const consumers = await stack.metadata.artifacts.consumers(v.id);
  const lineage = {
    producer: v.producerStepRunId ? { runId: v.producerRunId, stepRunId: v.producerStepRunId } : null,
    consumers: consumers.map((s) => ({ runId: s.runId, stepId: s.stepId, stepRunId: s.id, status: s.status })),
  };
  if (options.json) return printJson(io, { ...v, lineage });
  io.stdout.write(
    `${[
      `${v.name} v${v.version} (${v.id})`,
      `  type         ${v.dataType} via ${v.materializer}`,
      `  size         ${v.size} bytes`,
      `  hash         ${v.contentHash}`,
      `  uri          ${v.uri}`,
      `  created      ${v.createdAt}`,
      `  tags         ${v.tags.join(', ') || '-'}`,
      `  metadata     ${JSON.stringify(v.metadata)}`,
      `  produced by  ${lineage.producer ? `${lineage.producer.runId} / ${lineage.producer.stepRunId}` : '-'}`,
      `  consumed by  ${lineage.consumers.map((c) => `${c.runId}/${c.stepId}`).join(', ') || '-'}`,
    ].join('\n')}\n`,
  );
}

/** Prints a JSON/string artifact, or writes any artifact's bytes to `--out`. */
export async function artifactsLoad(
  stack: StackRuntime,
  name: string,
  version: string | undefined,
  options: { out?: string; json?: boolean },
  io: CliIo,
) {
  const v = await stack.metadata.artifacts.getVersion(name, parseVersion(version));
  if (options.out) {
    const out = resolve(io.cwd, options.out);
    checkOutputFile(out);
    // Written beside the target and renamed into place: a failed or damaged read leaves nothing.
    const partial = `${out}.${randomUUID()}.partial`;
    try {
      await pipe(await stack.artifacts.get(v.contentHash), createWriteStream(partial, { flags: 'wx' }));
      await rename(partial, out);
    } catch (error) {
      await rm(partial, { force: true });
      throw nameArtifactVersion(error, v);
    }
    if (options.json) printJson(io, { artifact: v.name, version: v.version, path: out, size: v.size });
    else io.stderr.write(`wrote ${v.size} bytes of ${v.name} v${v.version} to ${out}\n`);
    return;
  }
  if (v.materializer !== 'json' && v.materializer !== 'string') {
    throw new ValidationError(
      `${v.name} v${v.version} is ${v.dataType} (materializer "${v.materializer}"): write it to a file with --out PATH.`,
    );
  }
  const value = await loadArtifactVersion(stack.materializers, v, stack.artifacts);
  if (options.json || v.materializer === 'json') printJson(io, value);
  else io.stdout.write(`${String(value)}\n`);
}
