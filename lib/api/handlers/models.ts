import type { z } from 'zod';
import { PipelineNotPromoterError } from '../../metadata/promotion-rules.ts';
import type { Metadata } from '../../metadata/types.ts';
import { compareModelVersions } from '../../models/compare.ts';
import { isPromoter } from '../../models/model-context.ts';
import { type Caller, requireReleaseManager } from '../caller.ts';
import type { ApiContext } from '../context.ts';
import { toWirePage } from '../context.ts';
import type {
  AliasParams,
  AliasRemoveQuery,
  AliasRequestSchema,
  CompareQuery,
  ComparisonSchema,
  MetadataPatchSchema,
  ModelDetailSchema,
  ModelPageSchema,
  ModelParams,
  ModelVersionListQuery,
  ModelVersionNumberParams,
  ModelVersionPageSchema,
  ModelVersionRefParams,
  ModelVersionSchema,
  OkSchema,
  PageQuerySchema,
  ProductionRequestSchema,
  StageChangePageSchema,
  StageChangeSchema,
  StageChangesSchema,
  StageRequestSchema,
  TagPageQuerySchema,
} from '../schemas.ts';

type Out<T extends z.ZodType> = z.input<T>;

/** `3` → 3; a stage, alias, name or `latest` stays a string. */
function versionRef(value: string): number | string {
  return /^\d+$/.test(value) ? Number(value) : value;
}

export async function listModels(
  ctx: ApiContext,
  query: z.output<typeof TagPageQuerySchema>,
): Promise<Out<typeof ModelPageSchema>> {
  return toWirePage(await ctx.metadata.models.list(query));
}

/** A model with the versions holding `production` and `staging`. @throws NotFoundError */
export async function getModel(
  ctx: ApiContext,
  params: z.output<typeof ModelParams>,
): Promise<Out<typeof ModelDetailSchema>> {
  const model = await ctx.metadata.models.get(params.model);
  const holder = async (stage: 'production' | 'staging') =>
    (await ctx.metadata.models.listVersions(params.model, { stage, limit: 1 })).items[0]?.number ?? null;
  return { ...model, stages: { production: await holder('production'), staging: await holder('staging') } };
}

export async function listModelVersions(
  ctx: ApiContext,
  params: z.output<typeof ModelParams>,
  query: z.output<typeof ModelVersionListQuery>,
): Promise<Out<typeof ModelVersionPageSchema>> {
  await ctx.metadata.models.get(params.model);
  return toWirePage(await ctx.metadata.models.listVersions(params.model, query));
}

/** A version by number, name, stage, alias or `latest`. @throws NotFoundError */
export function getModelVersion(
  ctx: ApiContext,
  params: z.output<typeof ModelVersionRefParams>,
): Promise<Out<typeof ModelVersionSchema>> {
  return ctx.metadata.models.getVersion(params.model, versionRef(params.version));
}

/** What a stage change records of its caller: the actor, and for a step runner its run (see `checkPromotion`). */
function changedBy(caller: Caller): { actor: string; runId?: string } {
  return { actor: caller.actor, ...(caller.run ? { runId: caller.run.runId } : {}) };
}

/**
 * Who may move a version into production, or force a stage: release managers, and a step runner
 * acting for a run of a pipeline in the environment's `promoters` (a promotion gate).
 */
function requireProductionRights(ctx: ApiContext, what: string): void {
  const run = ctx.caller.run;
  if (run === undefined) {
    requireReleaseManager(ctx.caller, what);
    return;
  }
  const promoters = ctx.promoters ?? [];
  if (!isPromoter(promoters, run.pipeline)) {
    throw new PipelineNotPromoterError(
      `Pipeline "${run.pipeline}" may not ${what} on this stack (promoters: ${promoters.length === 0 ? 'none' : promoters.join(', ')}); add it to the environment's "promoters" in cdk.json or promote by hand`,
      { context: { pipeline: run.pipeline, runId: run.runId } },
    );
  }
}

/** Moves a version to `staging` or `archived`; `force` (archive the holder) is for release managers. */
export async function setModelStage(
  ctx: ApiContext,
  params: z.output<typeof ModelVersionNumberParams>,
  body: z.output<typeof StageRequestSchema>,
): Promise<Out<typeof StageChangesSchema>> {
  if (body.force) requireProductionRights(ctx, `force a version into ${body.stage}`);
  const changes = await ctx.metadata.models.setStage(params.model, params.version, body.stage, {
    ...changedBy(ctx.caller),
    ...(body.force ? { force: true } : {}),
    ...(body.reason ? { reason: body.reason } : {}),
    ...(body.expectedHolder !== undefined ? { expectedHolder: body.expectedHolder } : {}),
  });
  return { changes };
}

/**
 * Moves a version to `production`: release managers only. Its own resource so that, on AWS, IAM
 * policies can grant or deny it by `execute-api` ARN.
 */
export async function promoteToProduction(
  ctx: ApiContext,
  params: z.output<typeof ModelVersionNumberParams>,
  body: z.output<typeof ProductionRequestSchema>,
): Promise<Out<typeof StageChangesSchema>> {
  requireProductionRights(ctx, 'promote a version to production');
  const changes = await ctx.metadata.models.setStage(params.model, params.version, 'production', {
    ...changedBy(ctx.caller),
    ...(body.force ? { force: true } : {}),
    ...(body.reason ? { reason: body.reason } : {}),
    ...(body.expectedHolder !== undefined ? { expectedHolder: body.expectedHolder } : {}),
  });
  return { changes };
}

export function setModelAlias(
  ctx: ApiContext,
  params: z.output<typeof AliasParams>,
  body: z.output<typeof AliasRequestSchema>,
): Promise<Out<typeof StageChangeSchema>> {
  if (ctx.protectedAliases.includes(params.alias)) requireReleaseManager(ctx.caller, `move alias "${params.alias}"`);
  return ctx.metadata.models.setAlias(params.model, params.alias, body.version, {
    actor: ctx.caller.actor,
    ...(body.reason ? { reason: body.reason } : {}),
  });
}

export function removeModelAlias(
  ctx: ApiContext,
  params: z.output<typeof AliasParams>,
  query: z.output<typeof AliasRemoveQuery>,
): Promise<Out<typeof StageChangeSchema>> {
  if (ctx.protectedAliases.includes(params.alias)) requireReleaseManager(ctx.caller, `remove alias "${params.alias}"`);
  return ctx.metadata.models.removeAlias(params.model, params.alias, {
    actor: ctx.caller.actor,
    ...(query.reason ? { reason: query.reason } : {}),
  });
}

/** Every stage and alias change, oldest first. */
export async function getModelHistory(
  ctx: ApiContext,
  params: z.output<typeof ModelParams>,
  query: z.output<typeof PageQuerySchema>,
): Promise<Out<typeof StageChangePageSchema>> {
  await ctx.metadata.models.get(params.model);
  return toWirePage(await ctx.metadata.models.history(params.model, query));
}

/** Two or more versions' metadata side by side. */
export async function compareVersions(
  ctx: ApiContext,
  params: z.output<typeof ModelParams>,
  query: z.output<typeof CompareQuery>,
): Promise<Out<typeof ComparisonSchema>> {
  const refs = query.versions.split(',').map(versionRef);
  const versions = await Promise.all(refs.map((r) => ctx.metadata.models.getVersion(params.model, r)));
  return compareModelVersions(versions);
}

/** Merges values into a model version's metadata (metrics, notes). */
export async function patchModelVersionMetadata(
  ctx: ApiContext,
  params: z.output<typeof ModelVersionNumberParams>,
  body: z.output<typeof MetadataPatchSchema>,
): Promise<Out<typeof OkSchema>> {
  const version = await ctx.metadata.models.getVersion(params.model, params.version);
  await ctx.metadata.logMetadata({ kind: 'model_version', id: version.id }, body.values as Metadata);
  return { ok: true };
}
