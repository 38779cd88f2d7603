/**
 * The API's wire shapes, request and response, as zod schemas. Handler types are inferred from
 * them, the router validates requests with them and the OpenAPI document is generated from them:
 * one definition, three uses.
 */
import { z } from 'zod';
import { ARTIFACT_NAME, IDENTIFIER } from '../dsl/names.ts';
import { MAX_PAGE_LIMIT } from '../metadata/store-rules.ts';

// ---------- Shared pieces ----------

const JsonValue: z.ZodType<unknown> = z.unknown().meta({ description: 'Any JSON value' });
export const MetadataSchema = z.record(z.string(), JsonValue).meta({ id: 'Metadata' });
const Timestamp = z.string().meta({ description: 'ISO-8601 UTC timestamp', example: '2026-12-01T10:00:00.000Z' });
export const ErrorInfoSchema = z
  .object({ type: z.string(), message: z.string(), stack: z.string().optional() })
  .meta({ id: 'ErrorInfo' });

export const RUN_STATUSES = ['pending', 'running', 'completed', 'failed', 'cancelled'] as const;
export const STEP_RUN_STATUSES = ['running', 'completed', 'failed', 'cached', 'cancelled'] as const;
export const MODEL_STAGE_VALUES = ['staging', 'production', 'archived'] as const;

/** A name as the stores accept it: letters, digits and a few separators, no slashes. */
const Name = z.string().regex(/^[A-Za-z0-9_][A-Za-z0-9_.:-]{0,199}$/, 'use letters, digits, ".", "_", ":" or "-"');
const ArtifactName = z.string().regex(ARTIFACT_NAME, 'use letters, digits, ".", "_", ":" or "-"');
const ModelName = z.string().regex(/^[A-Za-z_][A-Za-z0-9_.-]{0,99}$/, 'use letters, digits, ".", "_" or "-"');
const Id = z.string().regex(/^[A-Za-z0-9_-]{1,100}$/, 'an id (letters, digits, "_" or "-")');
const Tag = z.string().regex(/^[^:\s]{1,100}(:\S.{0,199})?$/, 'a tag is key or key:value');
/** Integers arrive as path/query strings: digits only, then coerced. */
const PositiveIntString = z
  .string()
  .regex(/^[1-9][0-9]{0,8}$/, 'a whole number ≥ 1')
  .transform(Number);
const Cursor = z.string().max(2000).meta({ description: 'nextCursor of the previous page' });

export const PageQuerySchema = z.object({
  limit: PositiveIntString.pipe(z.number().max(MAX_PAGE_LIMIT)).optional(),
  cursor: Cursor.optional(),
});
export const TagPageQuerySchema = PageQuerySchema.extend({ tag: Tag.optional() });

const pageOf = <T extends z.ZodType>(item: T, id: string) =>
  z.object({ items: z.array(item), nextCursor: z.string().nullable() }).meta({ id });

export const ApiErrorSchema = z
  .object({
    error: z.object({
      status: z.number().int(),
      code: z.string(),
      message: z.string(),
      issues: z.array(z.object({ path: z.string(), message: z.string() })).optional(),
      holder: z.number().int().optional().meta({ description: 'On 409 for a held stage: the version holding it' }),
    }),
  })
  .meta({ id: 'ApiError' });

// ---------- Records ----------

export const StackSchema = z
  .object({
    name: z.string(),
    components: z.record(z.string(), JsonValue),
    description: z.string().optional(),
    tags: z.array(z.string()),
    createdAt: Timestamp,
    updatedAt: Timestamp,
  })
  .meta({ id: 'Stack' });

export const RunSchema = z
  .object({
    id: z.string(),
    pipeline: z.string(),
    status: z.enum(RUN_STATUSES),
    stack: z.string(),
    parameters: MetadataSchema,
    config: MetadataSchema,
    tags: z.array(z.string()),
    metadata: MetadataSchema,
    createdBy: z.string(),
    startedAt: Timestamp,
    endedAt: Timestamp.optional(),
    error: ErrorInfoSchema.optional(),
    modelVersionId: z.string().optional(),
  })
  .meta({ id: 'Run' });

export const StepRunSchema = z
  .object({
    id: z.string(),
    runId: z.string(),
    stepId: z.string(),
    stepName: z.string(),
    status: z.enum(STEP_RUN_STATUSES),
    cacheKey: z.string(),
    codeHash: z.string(),
    parameters: MetadataSchema,
    startedAt: Timestamp,
    endedAt: Timestamp.optional(),
    durationMs: z.number().optional(),
    attempts: z.number(),
    error: ErrorInfoSchema.optional(),
    cachedFrom: z.string().optional(),
    inputs: z.record(z.string(), z.string()),
    outputs: z.record(z.string(), z.string()),
    metadata: MetadataSchema,
    logs: z.array(z.string()).optional(),
  })
  .meta({ id: 'StepRun' });

export const ArtifactVersionSchema = z
  .object({
    id: z.string(),
    name: z.string(),
    version: z.number().int(),
    contentHash: z.string(),
    uri: z.string(),
    size: z.number(),
    materializer: z.string(),
    dataType: z.string(),
    metadata: MetadataSchema,
    tags: z.array(z.string()),
    producerRunId: z.string().optional(),
    producerStepRunId: z.string().optional(),
    createdAt: Timestamp,
  })
  .meta({ id: 'ArtifactVersion' });

export const ArtifactSummarySchema = z
  .object({
    name: z.string(),
    latestVersion: z.number().int(),
    versionCount: z.number().int(),
    tags: z.array(z.string()),
    updatedAt: Timestamp,
  })
  .meta({ id: 'ArtifactSummary' });

export const ModelSchema = z
  .object({
    name: z.string(),
    description: z.string().optional(),
    tags: z.array(z.string()),
    metadata: MetadataSchema,
    latestVersion: z.number().int(),
    createdAt: Timestamp,
    updatedAt: Timestamp,
  })
  .meta({ id: 'Model' });

export const ModelVersionSchema = z
  .object({
    id: z.string(),
    model: z.string(),
    number: z.number().int(),
    name: z.string().optional(),
    description: z.string().optional(),
    stage: z.enum(MODEL_STAGE_VALUES).optional(),
    aliases: z.array(z.string()),
    tags: z.array(z.string()),
    metadata: MetadataSchema,
    artifacts: z.array(
      z.object({
        role: z.enum(['data', 'model', 'deployment']),
        artifactName: z.string(),
        artifactVersionId: z.string(),
      }),
    ),
    runIds: z.array(z.string()),
    createdAt: Timestamp,
    updatedAt: Timestamp,
  })
  .meta({ id: 'ModelVersion' });

export const StageChangeSchema = z
  .object({
    id: z.string(),
    model: z.string(),
    versionNumber: z.number().int(),
    kind: z.enum(['stage', 'alias', 'alias-removed']),
    fromStage: z.enum(MODEL_STAGE_VALUES).optional(),
    toStage: z.enum(MODEL_STAGE_VALUES).optional(),
    alias: z.string().optional(),
    previousVersion: z.number().int().optional(),
    actor: z.string(),
    reason: z.string().optional(),
    at: Timestamp,
  })
  .meta({ id: 'StageChange' });

// ---------- Requests: path parameters ----------

export const StackParams = z.object({ stack: Name });
export const PipelineParams = z.object({ pipeline: Name });
export const RunParams = z.object({ runId: Id });
export const StepRunParams = z.object({ runId: Id, stepRunId: Id });
export const ArtifactParams = z.object({ artifact: ArtifactName });
export const ArtifactVersionParams = z.object({ artifact: ArtifactName, version: PositiveIntString });
export const ModelParams = z.object({ model: ModelName });
/** A version reference: a number, a version name, a stage, an alias or `latest`. */
export const ModelVersionRefParams = z.object({
  model: ModelName,
  version: z.string().regex(/^[A-Za-z0-9_][A-Za-z0-9_.-]{0,99}$/, 'a number, name, stage, alias or "latest"'),
});
export const ModelVersionNumberParams = z.object({ model: ModelName, version: PositiveIntString });
export const AliasParams = z.object({ model: ModelName, alias: z.string().regex(/^[A-Za-z_][A-Za-z0-9_.-]{0,99}$/) });
export const DownloadParams = z.object({ contentHash: z.string().regex(/^sha256:[0-9a-f]{64}$/) });

// ---------- Requests: queries and bodies ----------

const Time = z
  .string()
  .max(40)
  .refine((s) => !Number.isNaN(Date.parse(s)), 'an ISO-8601 time such as 2026-12-01T10:00:00Z');

export const RunListQuery = TagPageQuerySchema.extend({
  pipeline: Name.optional(),
  status: z.enum(RUN_STATUSES).optional(),
  since: Time.optional(),
  until: Time.optional(),
});
export const ModelVersionListQuery = TagPageQuerySchema.extend({ stage: z.enum(MODEL_STAGE_VALUES).optional() });
export const CompareQuery = z.object({
  versions: z
    .string()
    .max(500)
    .regex(/^[A-Za-z0-9_.-]+(,[A-Za-z0-9_.-]+)+$/, 'two or more version references separated by commas'),
});
export const DownloadQuery = z.object({
  expires: z.string().regex(/^[0-9]{1,13}$/, 'a Unix time in seconds'),
  signature: z.string().regex(/^[0-9a-f]{64}$/, 'a hex HMAC-SHA256'),
});

const Reason = z.string().min(1).max(500);
/** Compare-and-set: the version the caller expects to hold the stage now, or null for "free". */
const ExpectedHolder = z.number().int().min(1).nullable();

export const StageRequestSchema = z
  .strictObject({
    stage: z.enum(['staging', 'archived']),
    expectedHolder: ExpectedHolder.optional(),
    force: z.boolean().optional(),
    reason: Reason.optional(),
  })
  .meta({ id: 'StageRequest' });

export const ProductionRequestSchema = z
  .strictObject({
    expectedHolder: ExpectedHolder.optional(),
    force: z.boolean().optional(),
    reason: Reason.optional(),
  })
  .meta({ id: 'ProductionRequest' });

export const AliasRequestSchema = z
  .strictObject({ version: z.number().int().min(1), reason: Reason.optional() })
  .meta({ id: 'AliasRequest' });
export const AliasRemoveQuery = z.object({ reason: Reason.optional() });

export const MetadataPatchSchema = z
  .strictObject({ values: MetadataSchema.refine((m) => Object.keys(m).length > 0, 'at least one key') })
  .meta({ id: 'MetadataPatch' });
export const TagsRequestSchema = z.strictObject({ tags: z.array(Tag).min(1).max(50) }).meta({ id: 'TagsRequest' });

/** SHA-256 of a compiled state machine definition (`pipelineDefinitionHash`), 64 hex digits. */
export const DefinitionSha256 = z.string().regex(/^[0-9a-f]{64}$/, '64 lowercase hex digits (sha256)');

export const StartRunRequestSchema = z
  .strictObject({
    pipeline: z.string().regex(IDENTIFIER, 'a pipeline name (letters, digits, "_" or "-")'),
    stack: Name.optional().meta({ description: 'The stack to run on: must be the one this API serves' }),
    params: z.record(z.string(), JsonValue).optional(),
    tags: z.array(Tag).max(50).optional(),
    cache: z.boolean().optional(),
    definitionSha256: DefinitionSha256.optional().meta({
      description:
        "The caller's locally compiled definition hash: 409 when it differs from the one the server runs (drift check)",
    }),
  })
  .meta({ id: 'StartRunRequest' });

// ---------- Responses ----------

export const StackPageSchema = pageOf(StackSchema, 'StackPage');
export const RunPageSchema = pageOf(RunSchema, 'RunPage');
export const ArtifactPageSchema = pageOf(ArtifactSummarySchema, 'ArtifactPage');
export const ArtifactVersionPageSchema = pageOf(ArtifactVersionSchema, 'ArtifactVersionPage');
export const ModelPageSchema = pageOf(ModelSchema, 'ModelPage');
export const ModelVersionPageSchema = pageOf(ModelVersionSchema, 'ModelVersionPage');
export const StageChangePageSchema = pageOf(StageChangeSchema, 'StageChangePage');

export const PipelineSummarySchema = z
  .object({ name: z.string(), runCount: z.number().int(), lastRunAt: Timestamp, lastStatus: z.enum(RUN_STATUSES) })
  .meta({ id: 'PipelineSummary' });
export const PipelineListSchema = z.object({ items: z.array(PipelineSummarySchema) }).meta({ id: 'PipelineList' });

export const RunDetailSchema = z.object({ run: RunSchema, steps: z.array(StepRunSchema) }).meta({ id: 'RunDetail' });
export const StepRunListSchema = z.object({ items: z.array(StepRunSchema) }).meta({ id: 'StepRunList' });
export const StepLogsSchema = z
  .object({ stepRunId: z.string(), stepId: z.string(), logs: z.array(z.string()) })
  .meta({ id: 'StepLogs' });

export const LineageSchema = z
  .object({
    version: ArtifactVersionSchema,
    producer: StepRunSchema.nullable().meta({ description: 'The step run that wrote this version' }),
    producerInputs: z.array(ArtifactVersionSchema).meta({ description: "The producer's input versions" }),
    consumers: z.array(StepRunSchema).meta({ description: 'Step runs that read this version' }),
  })
  .meta({ id: 'ArtifactLineage' });

export const DownloadLinkSchema = z
  .object({ url: z.string(), expiresAt: Timestamp, size: z.number(), contentHash: z.string() })
  .meta({ id: 'DownloadLink' });

export const ModelDetailSchema = ModelSchema.extend({
  stages: z.object({ production: z.number().int().nullable(), staging: z.number().int().nullable() }),
}).meta({ id: 'ModelDetail' });

export const ComparisonSchema = z
  .object({
    model: z.string(),
    versions: z.array(
      z.object({
        number: z.number().int(),
        name: z.string().optional(),
        stage: z.string().optional(),
        aliases: z.array(z.string()),
      }),
    ),
    rows: z.array(z.object({ key: z.string(), values: z.array(JsonValue), differs: z.boolean() })),
  })
  .meta({ id: 'Comparison' });

export const StageChangesSchema = z.object({ changes: z.array(StageChangeSchema) }).meta({ id: 'StageChanges' });
export const StartedRunSchema = z
  .object({
    runId: z.string(),
    pipeline: z.string(),
    /** `trigger:user <actor>`: who started it, as the API authenticated them. */
    trigger: z.string(),
    executionArn: z.string().nullable().meta({ description: 'The Step Functions execution (AWS stacks)' }),
  })
  .meta({ id: 'StartedRun' });
export const OkSchema = z.object({ ok: z.literal(true) }).meta({ id: 'Ok' });
