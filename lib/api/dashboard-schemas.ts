/**
 * Wire shapes of the routes the dashboard needs beyond the core API (see `dashboard-routes.ts`):
 * who is calling, why each step hit or missed the cache, and a bounded preview of a version's bytes.
 */
import { z } from 'zod';
import { API_ROLES } from './caller.ts';
import { ArtifactVersionSchema, STEP_RUN_STATUSES } from './schemas.ts';

export const WhoAmISchema = z
  .object({ actor: z.string(), role: z.enum(API_ROLES) })
  .meta({ id: 'WhoAmI', description: 'The authenticated caller, as the API records it on changes' });

const KeyChangeSchema = z.object({
  kind: z.enum(['code', 'parameter', 'input', 'outputs', 'model']),
  name: z.string(),
  before: z.string().nullable(),
  after: z.string().nullable(),
  from: z.string().optional(),
});

export const StepExplanationSchema = z
  .object({
    stepId: z.string(),
    stepRunId: z.string(),
    status: z.enum(STEP_RUN_STATUSES),
    verdict: z.enum(['hit', 'changed', 'cache-disabled', 'first-run', 'not-reusable']),
    comparedWith: z.object({ runId: z.string(), stepRunId: z.string() }).optional(),
    changes: z.array(KeyChangeSchema),
    summary: z.string(),
  })
  .meta({ id: 'StepExplanation' });

export const RunExplanationSchema = z
  .object({ items: z.array(StepExplanationSchema) })
  .meta({ id: 'RunExplanation', description: 'Why each step run hit or missed the cache (`stackline runs explain`)' });

/** Bytes read for a preview at most; the rest is only counted (`truncated`). */
export const PREVIEW_MAX_BYTES = 64 * 1024;
/** Rows of a table preview at most. */
export const PREVIEW_MAX_ROWS = 100;

export const ArtifactPreviewSchema = z
  .discriminatedUnion('kind', [
    z.object({ kind: z.literal('json'), value: z.unknown() }),
    z.object({
      kind: z.literal('table'),
      columns: z.array(z.string()),
      rows: z.array(z.array(z.unknown())),
      totalRows: z.number().int(),
    }),
    z.object({ kind: z.literal('text'), text: z.string(), truncated: z.boolean() }),
    z.object({ kind: z.literal('binary'), size: z.number(), contentHash: z.string(), materializer: z.string() }),
  ])
  .meta({
    id: 'ArtifactPreview',
    description: `JSON values, text and tables of rows (first ${PREVIEW_MAX_ROWS}); binaries by size and hash only. At most ${PREVIEW_MAX_BYTES} bytes are read.`,
  });

export const RunArtifactsSchema = z
  .object({ items: z.array(ArtifactVersionSchema) })
  .meta({ id: 'RunArtifacts', description: "The artifact versions a run's steps read and wrote" });
