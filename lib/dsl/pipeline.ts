import { z } from 'zod';
import { PipelineDefinitionError, ValidationError } from '../errors.ts';
import type { Tag } from '../metadata/types.ts';
import { formatZodIssues } from '../util/zod-format.ts';
import { GraphBuilder, type PipelineGraph } from './builder.ts';
import { IDENTIFIER } from './names.ts';

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
  if (typeof config?.name !== 'string' || !IDENTIFIER.test(config.name)) {
    throw new PipelineDefinitionError(
      `Pipeline name ${JSON.stringify(config?.name)} is invalid: use letters, digits, "_" or "-" (max 80), starting with a letter or "_".`,
    );
  }
  const parameters = (config.parameters ?? z.object({})) as P;
  const name = config.name;
  return {
    kind: 'pipeline',
    name,
    config: { ...config, parameters },
    parseParameters(raw) {
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
