import type { z } from 'zod';
import type { Metadata } from '../../metadata/types.ts';
import type { ApiContext } from '../context.ts';
import { toWirePage } from '../context.ts';
import type {
  ArtifactPageSchema,
  ArtifactParams,
  ArtifactVersionPageSchema,
  ArtifactVersionParams,
  ArtifactVersionSchema,
  DownloadLinkSchema,
  LineageSchema,
  MetadataPatchSchema,
  OkSchema,
  TagPageQuerySchema,
  TagsRequestSchema,
} from '../schemas.ts';

type Out<T extends z.ZodType> = z.input<T>;

/** Artifacts by name with their latest version number. */
export async function listArtifacts(
  ctx: ApiContext,
  query: z.output<typeof TagPageQuerySchema>,
): Promise<Out<typeof ArtifactPageSchema>> {
  return toWirePage(await ctx.metadata.artifacts.list(query));
}

/** Versions of one artifact, newest first. @throws NotFoundError when the artifact has none */
export async function listArtifactVersions(
  ctx: ApiContext,
  params: z.output<typeof ArtifactParams>,
  query: z.output<typeof TagPageQuerySchema>,
): Promise<Out<typeof ArtifactVersionPageSchema>> {
  await ctx.metadata.artifacts.getVersion(params.artifact, 'latest');
  return toWirePage(await ctx.metadata.artifacts.listVersions(params.artifact, query));
}

/** One artifact version. @throws NotFoundError */
export function getArtifactVersion(
  ctx: ApiContext,
  params: z.output<typeof ArtifactVersionParams>,
): Promise<Out<typeof ArtifactVersionSchema>> {
  return ctx.metadata.artifacts.getVersion(params.artifact, params.version);
}

/** Where a version came from (its producing step run and that step's inputs) and who read it. */
export async function getArtifactLineage(
  ctx: ApiContext,
  params: z.output<typeof ArtifactVersionParams>,
): Promise<Out<typeof LineageSchema>> {
  const version = await ctx.metadata.artifacts.getVersion(params.artifact, params.version);
  const producer = version.producerStepRunId ? await ctx.metadata.runs.getStep(version.producerStepRunId) : null;
  const producerInputs = producer ? await ctx.metadata.artifacts.getVersionsByIds(Object.values(producer.inputs)) : [];
  return { version, producer, producerInputs, consumers: await ctx.metadata.artifacts.consumers(version.id) };
}

/** A short-lived link to the version's bytes (presigned S3 URL on AWS stacks). */
export async function getArtifactDownloadLink(
  ctx: ApiContext,
  params: z.output<typeof ArtifactVersionParams>,
): Promise<Out<typeof DownloadLinkSchema>> {
  const version = await ctx.metadata.artifacts.getVersion(params.artifact, params.version);
  const link = await ctx.downloads.issue(version);
  return { ...link, size: version.size, contentHash: version.contentHash };
}

/** Merges values into an artifact version's metadata. */
export async function patchArtifactVersionMetadata(
  ctx: ApiContext,
  params: z.output<typeof ArtifactVersionParams>,
  body: z.output<typeof MetadataPatchSchema>,
): Promise<Out<typeof OkSchema>> {
  const version = await ctx.metadata.artifacts.getVersion(params.artifact, params.version);
  await ctx.metadata.logMetadata({ kind: 'artifact_version', id: version.id }, body.values as Metadata);
  return { ok: true };
}

/** Adds tags to an artifact version (tags already there stay once). */
export async function addArtifactVersionTags(
  ctx: ApiContext,
  params: z.output<typeof ArtifactVersionParams>,
  body: z.output<typeof TagsRequestSchema>,
): Promise<Out<typeof ArtifactVersionSchema>> {
  const version = await ctx.metadata.artifacts.getVersion(params.artifact, params.version);
  await ctx.metadata.artifacts.addTags(version.id, body.tags);
  return ctx.metadata.artifacts.getVersionById(version.id);
}
