import type { z } from 'zod';
import { PipelineDefinitionError } from '../errors.ts';
import { currentBuilder } from './builder.ts';
import type { OutputRef } from './types.ts';

/**
 * Reads an existing artifact version — produced by another pipeline or saved from a notebook —
 * as a step input. Resolved when the run starts (a missing artifact fails before anything is
 * recorded); the version read is part of the consuming step's cache key and lineage, and is
 * linked as a `data` artifact to the run's model version when the pipeline declares a model.
 *
 * @example
 * const train = externalArtifact('iris_train_features', Dataset);
 * fit({ train });
 */
export function externalArtifact<S extends z.ZodType>(
  name: string,
  _schema: S,
  options: { version?: number | 'latest' } = {},
): OutputRef<z.output<S>> {
  const builder = currentBuilder();
  if (!builder) throw new PipelineDefinitionError(`externalArtifact("${name}") was called outside a pipeline body.`);
  return builder.addExternal(name, options.version ?? 'latest') as OutputRef<z.output<S>>;
}
