import { z } from 'zod';
import { PipelineDefinitionError, ValidationError } from '../errors.ts';
import type { Tag } from '../metadata/types.ts';
import { formatZodIssues } from '../util/zod-format.ts';
import { GraphBuilder, type PipelineGraph } from './builder.ts';
import { closestName, displayValue, nameProblem } from './names.ts';
import { type PipelineTrigger, type ScheduleTrigger, triggersProblem } from './triggers.ts';

/** The model a pipeline produces versions of (training) or belongs to. */
export interface PipelineModel {
  name: string;
  /**
   * Attach runs to this named version instead of creating a new version per run
   * (created on first use).
   */
  version?: string;
  description?: string;
  tags?: Tag[];
}

export interface PipelineConfig<P extends z.ZodType> {
  /** Stable name: runs, caches and state machines are keyed by it. */
  name: string;
  description?: string;
  parameters?: P;
  tags?: Tag[];
  /** Each run creates a new version of this model (or attaches to the named one). */
  model?: PipelineModel;
  /** Default for every step's cache option. Default true. */
  cache?: boolean;
  /** Start runs on a cron or rate schedule (one or several); deployed as EventBridge Scheduler schedules. */
  schedule?: ScheduleTrigger | ScheduleTrigger[];
  /** Start runs on events (S3 objects, custom events, Stackline's own); deployed as EventBridge rules. */
  triggers?: PipelineTrigger[];
}

/** A pipeline as the runtime sees it. */
export interface PipelineDefinition<P extends z.ZodType = z.ZodType> {
  readonly kind: 'pipeline';
  readonly name: string;
  readonly config: Readonly<Omit<PipelineConfig<P>, 'parameters'>> & { parameters: P };
  /** Validates raw parameters (CLI, config file, API) against the pipeline's schema. @throws ValidationError */
  parseParameters(raw: unknown): z.output<P>;
  /** Runs the body with validated parameters and returns the validated DAG. @throws PipelineDefinitionError */
  build(params: z.output<P>): PipelineGraph;
}

/**
 * Declares a pipeline. The body wires steps by passing outputs to inputs; it runs once per run
 * with the run's parameters, and the wiring it records is the DAG.
 *
 * @example
 * export const training = pipeline(
 *   { name: 'training', parameters: z.object({ trees: z.number().int().default(25) }), tags: ['team:fraud-detection'] },
 *   ({ trees }) => {
 *     const { rows } = loadIris();
 *     const { train, test } = split({ rows });
 *     const { model } = fit({ train }, { params: { trees } });
 *     evaluate({ model, test });
 *   },
 * );
 */
export function pipeline<P extends z.ZodType = z.ZodObject<Record<never, never>>>(
  config: PipelineConfig<P>,
  body: (params: z.output<P>) => void,
): PipelineDefinition<P> {
  const problem =
    nameProblem('pipeline', config?.name) ??
    (config?.model === undefined ? undefined : nameProblem('model', config.model.name)) ??
    (config?.tags ?? []).map((tag) => nameProblem('tag', tag)).find((p) => p !== undefined);
  if (problem !== undefined)
    throw new PipelineDefinitionError(problem, { context: { pipeline: String(config?.name) } });
  const parameters = (config.parameters ?? z.object({})) as P;
  const name = config.name;
  const triggerProblem = triggersProblem(name, config.schedule, config.triggers, parameterNamesOf(parameters));
  if (triggerProblem !== undefined) throw new PipelineDefinitionError(triggerProblem, { context: { pipeline: name } });
  return {
    kind: 'pipeline',
    name,
    config: { ...config, parameters },
    parseParameters(raw) {
      const unknown = unknownKeys(parameters, raw ?? {});
      if (unknown !== undefined) {
        throw new ValidationError(`Pipeline "${name}" has no parameter ${unknown}`, { context: { pipeline: name } });
      }
      const parsed = parameters.safeParse(raw ?? {});
      if (!parsed.success) {
        throw new ValidationError(`Invalid parameters for pipeline "${name}": ${formatZodIssues(parsed.error)}`, {
          context: { pipeline: name },
          cause: parsed.error,
        });
      }
      return parsed.data;
    },
    build(params) {
      return GraphBuilder.build(name, () => body(params));
    },
  };
}

export function isPipelineDefinition(value: unknown): value is PipelineDefinition {
  return typeof value === 'object' && value !== null && (value as { kind?: unknown }).kind === 'pipeline';
}

/** Keys an object schema would silently drop: a misspelled parameter must not run with the default. */
const FORBIDDEN_KEYS = new Set(['__proto__', 'constructor', 'prototype']);

/**
 * The first key of `value` that `schema` does not declare, described with the closest declared
 * name (`"nn" (did you mean "n"? known: n, seed)`), or undefined. Looks into nested objects.
 */
function unknownKeys(schema: z.ZodType, value: unknown, path: string[] = []): string | undefined {
  const object = objectSchema(schema);
  if (object === undefined || typeof value !== 'object' || value === null || Array.isArray(value)) return undefined;
  const shape = object.shape as Record<string, z.ZodType>;
  const known = Object.keys(shape);
  for (const key of Object.keys(value)) {
    const where = [...path, key].join('.');
    if (FORBIDDEN_KEYS.has(key)) return `${displayValue(where)}: "${key}" cannot be a parameter name.`;
    if (!Object.hasOwn(shape, key)) {
      const guess = closestName(key, known);
      const hint = guess ? `did you mean "${[...path, guess].join('.')}"? ` : '';
      return `${displayValue(where)} (${hint}known: ${known.join(', ') || 'none'}).`;
    }
    const nested = unknownKeys(shape[key]!, (value as Record<string, unknown>)[key], [...path, key]);
    if (nested !== undefined) return nested;
  }
  return undefined;
}

/** The parameter names an object schema declares; undefined when it accepts any key. */
export function parameterNamesOf(schema: z.ZodType): string[] | undefined {
  const object = objectSchema(schema);
  return object === undefined ? undefined : Object.keys(object.shape);
}

/** The object schema under optional/default/nullable wrappers, unless it accepts any key anyway. */
function objectSchema(schema: z.ZodType): z.ZodObject | undefined {
  let current: z.ZodType = schema;
  for (let depth = 0; depth < 10; depth++) {
    if (current instanceof z.ZodObject) {
      // An object with a catchall or passthrough accepts unknown keys on purpose.
      const def = current.def as { catchall?: z.ZodType };
      return def.catchall === undefined || def.catchall instanceof z.ZodNever ? current : undefined;
    }
    if (current instanceof z.ZodOptional || current instanceof z.ZodNullable || current instanceof z.ZodDefault) {
      current = current.def.innerType as z.ZodType;
      continue;
    }
    return undefined;
  }
  return undefined;
}
