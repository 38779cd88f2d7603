import { z } from 'zod';
import type { StepNode } from '../dsl/builder.ts';
import type { StepSpec } from '../dsl/step.ts';
import { canonicalJson, sha256Hex } from '../util/canonical-json.ts';

const outputDeclarationHashes = new WeakMap<StepSpec, string>();

function describeSchema(schema: z.ZodType): unknown {
  try {
    return z.toJSONSchema(schema, { unrepresentable: 'any' });
  } catch {
    // Schemas JSON Schema cannot express (custom refinements, instanceof) fall back to their kind.
    return (schema as { def?: { type?: string } }).def?.type ?? 'unknown';
  }
}

/** Hash of a step's output declarations: names, schemas, materializers and artifact names. */
export function outputDeclarationHash(spec: StepSpec): string {
  let hash = outputDeclarationHashes.get(spec);
  if (hash === undefined) {
    const described = Object.entries(spec.outputs).map(([name, o]) => ({
      name,
      schema: describeSchema(o.schema),
      materializer: o.materializer ?? null,
      artifact: o.artifact ?? null,
    }));
    hash = sha256Hex(canonicalJson(described));
    outputDeclarationHashes.set(spec, hash);
  }
  return hash;
}

export interface CacheKeyInput {
  node: StepNode;
  /** Input name → content hash of the artifact version read. */
  inputHashes: Record<string, string>;
  /** Id of the model version the step reads, when it declares one. */
  modelVersionId?: string;
}

/**
 * The cache key of a step run: step identity and code, parameters, input content hashes, output
 * declarations and the resolved model version. Two runs with the same key would compute the
 * same outputs, so the second reuses the first one's artifact versions.
 */
export function computeCacheKey({ node, inputHashes, modelVersionId }: CacheKeyInput): string {
  return sha256Hex(
    canonicalJson({
      v: 1,
      step: node.spec.name,
      code: node.spec.codeHash,
      params: node.params,
      inputs: inputHashes,
      outputs: outputDeclarationHash(node.spec),
      model: modelVersionId ?? null,
    }),
  );
}
