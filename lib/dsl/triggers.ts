/**
 * Schedules and event triggers, declared with the pipeline (`pipeline({ schedule, triggers })`).
 * Plain data: the CDK app turns each into an EventBridge Scheduler schedule or an EventBridge
 * rule (infra/pipeline-triggers.ts); nothing here knows AWS. Checked twice: the shapes when the
 * pipeline is declared, the parameter names against the pipeline's schema as well.
 */
import { z } from 'zod';
import type { ModelStage } from '../metadata/types.ts';
import { formatZodIssues } from '../util/zod-format.ts';
import { nameProblem } from './names.ts';

/**
 * Where a parameter's value comes from: a JSONPath into the event (`{ path: '$.detail.object.key' }`,
 * as an EventBridge input transformer reads it) or a literal JSON value.
 */
export type ParameterSource = { path: string } | string | number | boolean | null;

/** Pipeline parameter name → where its value comes from. */
export type ParameterMapping = Record<string, ParameterSource>;

/** A cron or rate schedule (EventBridge Scheduler expressions without the `cron(...)` wrapper). */
export interface ScheduleTrigger {
  /** Six fields: `minutes hours day-of-month month day-of-week year`, e.g. `0 6 * * ? *`. */
  cron?: string;
  /** `<n> minute|minutes|hour|hours|day|days`, e.g. `12 hours`. */
  rate?: string;
  /** IANA time zone the cron is read in. Default UTC. */
  timeZone?: string;
  /** Let Scheduler start the run up to this many minutes late (spreads load). Default off. */
  flexibleWindowMinutes?: number;
  /** Literal parameters of every scheduled run (validated against the pipeline's schema). */
  parameters?: Record<string, unknown>;
}

/** An object created under `prefix` (and ending in `suffix`) in the environment's artifact bucket. */
export interface S3Trigger {
  s3: { prefix: string; suffix?: string };
  parameters?: ParameterMapping;
}

/** A custom event on the default bus, matched by source and detail-type (and optionally a detail pattern). */
export interface EventTrigger {
  event: { source: string; detailType: string; detail?: Record<string, unknown> };
  parameters?: ParameterMapping;
}

/** A model version reaching a stage (Stackline's own `Model Version Stage Changed` event). */
export interface ModelStageChangedTrigger {
  stackline: 'model-stage-changed';
  model: string;
  stage: ModelStage;
  parameters?: ParameterMapping;
}

/** A run of another pipeline completing (Stackline's own `Run Status Changed` event, status `completed`). */
export interface RunCompletedTrigger {
  stackline: 'run-completed';
  pipeline: string;
  parameters?: ParameterMapping;
}

export type PipelineTrigger = S3Trigger | EventTrigger | ModelStageChangedTrigger | RunCompletedTrigger;

/** The kind recorded on a run a trigger started (`trigger.kind`). */
export type TriggerKind = 'schedule' | 's3' | 'event' | 'stackline';

/** What started a run, as recorded in its `config.trigger` (absent for runs a person started). */
export interface RunTrigger {
  kind: TriggerKind;
  /** The schedule's or rule's name. */
  name: string;
  /** The EventBridge event id, or the Scheduler execution id: one run per id. */
  id: string;
}

const JSON_PATH = /^\$(\.[A-Za-z0-9_-]+|\[\d+\])*$/;
const CRON = /^\S+( \S+){5}$/;
const RATE = /^[1-9]\d* (minute|minutes|hour|hours|day|days)$/;
const STAGES = ['staging', 'production', 'archived'] as const;

const parameterSource = z.union([
  z.strictObject({
    path: z.string().regex(JSON_PATH, 'a JSONPath such as "$.detail.object.key" (dots and [n] only)'),
  }),
  z.string(),
  z.number(),
  z.boolean(),
  z.null(),
]);
const mapping = z.record(z.string(), parameterSource).optional();

const ScheduleSchema = z
  .strictObject({
    cron: z.string().regex(CRON, 'six fields "min hour day-of-month month day-of-week year", e.g. "0 6 * * ? *"'),
    rate: z.string().regex(RATE, '"<n> minute(s)|hour(s)|day(s)", e.g. "12 hours"'),
    timeZone: z.string().regex(/^[A-Za-z_]+(\/[A-Za-z0-9_+-]+)*$/, 'an IANA time zone such as "Europe/Paris"'),
    flexibleWindowMinutes: z.number().int().min(1).max(1440),
    parameters: z.record(z.string(), z.unknown()),
  })
  .partial()
  .refine((s) => (s.cron === undefined) !== (s.rate === undefined), {
    message: 'give exactly one of cron or rate',
    path: ['cron'],
  });

const TriggerSchema = z.union([
  z.strictObject({
    s3: z.strictObject({ prefix: z.string().min(1, 'a non-empty key prefix'), suffix: z.string().min(1).optional() }),
    parameters: mapping,
  }),
  z.strictObject({
    event: z.strictObject({
      source: z.string().min(1),
      detailType: z.string().min(1),
      detail: z.record(z.string(), z.unknown()).optional(),
    }),
    parameters: mapping,
  }),
  z.strictObject({
    stackline: z.literal('model-stage-changed'),
    model: z.string().refine((m) => nameProblem('model', m) === undefined, 'a valid model name'),
    stage: z.enum(STAGES),
    parameters: mapping,
  }),
  z.strictObject({
    stackline: z.literal('run-completed'),
    pipeline: z.string().refine((p) => nameProblem('pipeline', p) === undefined, 'a valid pipeline name'),
    parameters: mapping,
  }),
]);

/** The declared schedules, one per entry (`schedule` may be one object or an array). */
export function schedulesOf(schedule: ScheduleTrigger | readonly ScheduleTrigger[] | undefined): ScheduleTrigger[] {
  if (schedule === undefined) return [];
  return Array.isArray(schedule) ? [...schedule] : [schedule as ScheduleTrigger];
}

/**
 * Why the declared schedules and triggers are invalid for a pipeline whose parameter names are
 * `parameterNames` (undefined: the schema accepts any key), or undefined when they are valid.
 */
export function triggersProblem(
  pipeline: string,
  schedule: unknown,
  triggers: unknown,
  parameterNames: readonly string[] | undefined,
): string | undefined {
  const schedules = schedule === undefined ? [] : Array.isArray(schedule) ? schedule : [schedule];
  for (const [i, entry] of schedules.entries()) {
    const where = Array.isArray(schedule) ? `schedule[${i}]` : 'schedule';
    const parsed = ScheduleSchema.safeParse(entry);
    if (!parsed.success) return `Pipeline "${pipeline}" ${where} is invalid: ${formatZodIssues(parsed.error)}`;
    const unknown = unknownParameter(Object.keys(parsed.data.parameters ?? {}), parameterNames);
    if (unknown) return `Pipeline "${pipeline}" ${where} sets parameter ${unknown}`;
  }
  if (triggers === undefined) return undefined;
  if (!Array.isArray(triggers)) return `Pipeline "${pipeline}" triggers must be an array of triggers.`;
  for (const [i, entry] of triggers.entries()) {
    const parsed = TriggerSchema.safeParse(entry);
    if (!parsed.success) {
      return `Pipeline "${pipeline}" triggers[${i}] is invalid: give { s3: { prefix } }, { event: { source, detailType } }, { stackline: 'model-stage-changed', model, stage } or { stackline: 'run-completed', pipeline } (${formatZodIssues(parsed.error)})`;
    }
    const unknown = unknownParameter(Object.keys(parsed.data.parameters ?? {}), parameterNames);
    if (unknown) return `Pipeline "${pipeline}" triggers[${i}] maps parameter ${unknown}`;
    if ('stackline' in parsed.data && parsed.data.stackline === 'run-completed' && parsed.data.pipeline === pipeline) {
      return `Pipeline "${pipeline}" triggers[${i}] would start "${pipeline}" whenever it completes (an endless loop); name another pipeline.`;
    }
  }
  return undefined;
}

function unknownParameter(names: readonly string[], known: readonly string[] | undefined): string | undefined {
  if (known === undefined) return undefined;
  const missing = names.find((name) => !known.includes(name));
  return missing === undefined
    ? undefined
    : `"${missing}", which the pipeline's parameters do not declare (known: ${known.join(', ') || 'none'}).`;
}
