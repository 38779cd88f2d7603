import { existsSync } from 'node:fs';
import { resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import { isPipelineDefinition, type PipelineDefinition } from '../dsl/pipeline.ts';
import { ValidationError } from '../errors.ts';

const TYPESCRIPT_FILE = /\.[cm]?tsx?$/;
let typescriptLoader: Promise<void> | undefined;

/**
 * Lets Node import TypeScript files: registers tsx, once, the first time a `.ts` pipeline is loaded
 * (commands that load none start without it). Not needed when this module is itself running as
 * TypeScript source: a loader that can (tsx, vitest) is then already in place.
 */
export function loadTypeScript(): Promise<void> {
  if (import.meta.url.endsWith('.ts')) return Promise.resolve();
  typescriptLoader ??= import('tsx/esm/api').then(({ register }) => {
    register();
  });
  return typescriptLoader;
}

/**
 * Imports a pipeline file (TypeScript runs directly: see {@link loadTypeScript}) and picks the pipeline
 * to run: the one named by `--pipeline`, or the only one the file exports.
 */
export async function loadPipeline(file: string, cwd: string, name?: string): Promise<PipelineDefinition> {
  const path = resolve(cwd, file);
  if (!existsSync(path)) throw new ValidationError(`Pipeline file not found: ${path}`);
  if (TYPESCRIPT_FILE.test(path)) await loadTypeScript();
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
