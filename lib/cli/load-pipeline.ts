import { existsSync } from 'node:fs';
import { resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import { isPipelineDefinition, type PipelineDefinition } from '../dsl/pipeline.ts';
import { ValidationError } from '../errors.ts';

/**
 * Imports a pipeline file (TypeScript runs directly: the CLI runs under tsx) and picks the pipeline
 * to run: the one named by `--pipeline`, or the only one the file exports.
 */
export async function loadPipeline(file: string, cwd: string, name?: string): Promise<PipelineDefinition> {
  const path = resolve(cwd, file);
  if (!existsSync(path)) throw new ValidationError(`Pipeline file not found: ${path}`);
  const module = (await import(pathToFileURL(path).href)) as Record<string, unknown>;
  const pipelines = new Map<string, PipelineDefinition>();
  for (const value of Object.values(module)) if (isPipelineDefinition(value)) pipelines.set(value.name, value);
  if (pipelines.size === 0) {
    throw new ValidationError(
      `${file} exports no pipeline. Export one: \`export const training = pipeline({ name: 'training' }, () => { ... })\`.`,
    );
  }
  if (name) {
    const found = pipelines.get(name);
    if (!found)
      throw new ValidationError(
        `${file} has no pipeline named "${name}" (it exports: ${[...pipelines.keys()].join(', ')}).`,
      );
    return found;
  }
  if (pipelines.size > 1) {
    throw new ValidationError(
      `${file} exports several pipelines (${[...pipelines.keys()].join(', ')}): choose one with --pipeline NAME.`,
    );
  }
  return [...pipelines.values()][0]!;
}
