import type { Materializer } from './materializer.ts';

const registered: Materializer[] = [];

/**
 * Registers a materializer for every stack opened in this process — call it at the top level of
 * the module that defines the steps using it, so the CLI, scripts and the AWS step runner (which
 * all import that module) know it. Outputs pick it by `materializer: '<name>'`, or automatically
 * when its `canHandle` accepts the value.
 *
 * @example
 * registerMaterializer({ name: 'matrix', canHandle: (v) => v instanceof Matrix, save, load });
 */
export function registerMaterializer<T>(materializer: Materializer<T>): void {
  const index = registered.findIndex((m) => m.name === materializer.name);
  // Re-registering the same name (a module loaded twice, hot reload) replaces the earlier one.
  if (index >= 0) registered.splice(index, 1);
  registered.push(materializer as Materializer);
}

export function registeredMaterializers(): readonly Materializer[] {
  return registered;
}
