import type { z } from 'zod';
import { explainRun } from '../../runtime/explain.ts';
import type { ApiContext } from '../context.ts';
import {
  type ArtifactPreviewSchema,
  PREVIEW_MAX_BYTES,
  PREVIEW_MAX_ROWS,
  type RunArtifactsSchema,
  type RunExplanationSchema,
  type WhoAmISchema,
} from '../dashboard-schemas.ts';
import type { ArtifactVersionParams, RunParams } from '../schemas.ts';

type Out<T extends z.ZodType> = z.input<T>;

/** The authenticated caller: what a client shows, and what it may offer (promotion needs `release-manager`). */
export async function whoAmI(ctx: ApiContext): Promise<Out<typeof WhoAmISchema>> {
  return { actor: ctx.caller.actor, role: ctx.caller.role };
}

/** Why each step of a run hit or missed the cache, as `stackline runs explain` says it. @throws NotFoundError */
export async function explainRunSteps(
  ctx: ApiContext,
  params: z.output<typeof RunParams>,
): Promise<Out<typeof RunExplanationSchema>> {
  return { items: await explainRun(ctx.metadata, params.runId) };
}

/** The artifact versions the run's step runs read and wrote (names and versions for their ids). */
export async function listRunArtifacts(
  ctx: ApiContext,
  params: z.output<typeof RunParams>,
): Promise<Out<typeof RunArtifactsSchema>> {
  await ctx.metadata.runs.get(params.runId);
  const steps = await ctx.metadata.runs.listSteps(params.runId);
  const ids = [...new Set(steps.flatMap((step) => [...Object.values(step.inputs), ...Object.values(step.outputs)]))];
  return { items: ids.length ? await ctx.metadata.artifacts.getVersionsByIds(ids) : [] };
}

/**
 * A bounded preview of a version: JSON values (arrays of objects as a table of rows), text, and for
 * everything else (binaries, files, directories, custom materializers) only size and hash.
 */
export async function previewArtifactVersion(
  ctx: ApiContext,
  params: z.output<typeof ArtifactVersionParams>,
): Promise<Out<typeof ArtifactPreviewSchema>> {
  const version = await ctx.metadata.artifacts.getVersion(params.artifact, params.version);
  if (version.materializer !== 'json' && version.materializer !== 'string') {
    return { kind: 'binary', size: version.size, contentHash: version.contentHash, materializer: version.materializer };
  }
  const bytes = await readPrefix(await ctx.artifacts.get(version.contentHash), PREVIEW_MAX_BYTES);
  const truncated = version.size > bytes.length;
  const text = bytes.toString('utf8');
  if (version.materializer === 'string' || truncated) return { kind: 'text', text, truncated };
  const value: unknown = JSON.parse(text);
  const rows = tableRows(value);
  return rows ?? { kind: 'json', value };
}

/** An array of plain objects becomes columns (the union of keys, in first-seen order) and rows. */
function tableRows(value: unknown): Out<typeof ArtifactPreviewSchema> | undefined {
  if (!Array.isArray(value) || value.length === 0) return undefined;
  if (!value.every((row) => row !== null && typeof row === 'object' && !Array.isArray(row))) return undefined;
  const columns = [...new Set(value.flatMap((row) => Object.keys(row as object)))];
  const rows = value
    .slice(0, PREVIEW_MAX_ROWS)
    .map((row) => columns.map((c) => (row as Record<string, unknown>)[c] ?? null));
  return { kind: 'table', columns, rows, totalRows: value.length };
}

async function readPrefix(stream: AsyncIterable<Buffer> & { destroy(): void }, max: number): Promise<Buffer> {
  const chunks: Buffer[] = [];
  let length = 0;
  try {
    for await (const chunk of stream) {
      chunks.push(chunk);
      length += chunk.length;
      if (length >= max) break;
    }
  } finally {
    stream.destroy();
  }
  return Buffer.concat(chunks).subarray(0, max);
}
