import { fileURLToPath } from 'node:url';
import { z } from 'zod';
import { type CodeFingerprint, callerFile, stepCodeFingerprint as fingerprintCode } from '../code-hash/code-hash.ts';
import { PipelineDefinitionError } from '../errors.ts';
import type { Metadata } from '../metadata/types.ts';
import { currentBuilder } from './builder.ts';
import { nameProblem } from './names.ts';
import type {
  InputDeclarations,
  InputRefs,
  InputValues,
  InvocationOptions,
  OutputDeclaration,
  OutputDeclarations,
  OutputOptions,
  OutputRef,
  OutputRefs,
  OutputValues,
  SchemaOf,
  StepConfig,
  StepContext,
} from './types.ts';

export type StepFunction<I extends InputDeclarations, P extends z.ZodType, O extends OutputDeclarations> = (args: {
  inputs: InputValues<I>;
  params: z.output<P>;
  context: StepContext;
}) => OutputValues<O> | Promise<OutputValues<O>>;

type Invoke<I extends InputDeclarations, P extends z.ZodType, O extends OutputDeclarations> = keyof I extends never
  ? (inputs?: Record<string, never>, options?: InvocationOptions<z.input<P>>) => OutputRefs<O>
  : (inputs: InputRefs<I>, options?: InvocationOptions<z.input<P>>) => OutputRefs<O>;

/** A step as the runtime sees it, without the type parameters. */
export interface StepSpec {
  readonly name: string;
  readonly description?: string;
  readonly inputs: Readonly<Record<string, z.ZodType>>;
  readonly parameters: z.ZodType;
  readonly outputs: Readonly<Record<string, Required<Pick<OutputOptions, 'schema'>> & OutputOptions>>;
  readonly options: Omit<
    StepConfig<InputDeclarations, z.ZodType, OutputDeclarations>,
    'name' | 'inputs' | 'outputs' | 'parameters' | 'description'
  >;
  /**
   * SHA-256 of the step function's source, the module-level declarations it uses, the project
   * modules they import (transitively) and the versions of the packages imported, plus
   * `codeVersion`: editing any of them invalidates the cache. Computed on first read.
   */
  readonly codeHash: string;
  readonly fn: (args: { inputs: Record<string, unknown>; params: unknown; context: StepContext }) => unknown;
}

/** Inputs of a fan-out: the mapped input takes a list of what the step takes; the others as usual. */
export type MapInputRefs<I extends InputDeclarations, K extends keyof I> = {
  [J in keyof I]: J extends K ? OutputRef<Array<z.output<I[J]>>> : OutputRef<z.output<I[J]>>;
};
/** Outputs of a fan-out: each output collected into a list, in item order. */
export type CollectedOutputRefs<O extends OutputDeclarations> = {
  [K in keyof O]: OutputRef<Array<z.output<SchemaOf<O[K]>>>>;
};

export interface MapOptions<K extends string, P> extends InvocationOptions<P> {
  /** The input whose list is fanned out: the step runs once per item. */
  over: K;
  /** Items run at once (local orchestrator and Step Functions Map). Default 4 locally, 10 on AWS. */
  maxConcurrency?: number;
}

export type StepDefinition<I extends InputDeclarations, P extends z.ZodType, O extends OutputDeclarations> = Invoke<
  I,
  P,
  O
> & {
  readonly spec: StepSpec;
  /**
   * Fan-out: runs the step once per item of the list wired to input `over`; a downstream step
   * receives each output as a list. Compiles to a Step Functions Map state.
   *
   * @example
   * const { scores } = scoreShard.map({ shard: shards, model }, { over: 'shard', maxConcurrency: 8 });
   * summarize({ scores });
   */
  map<K extends keyof I & string>(
    inputs: MapInputRefs<I, K>,
    options: MapOptions<K, z.input<P>>,
  ): CollectedOutputRefs<O>;
};

export type AnyStep = { readonly spec: StepSpec };

const THIS_FILE = fileURLToPath(import.meta.url);
const fingerprints = new WeakMap<StepSpec, () => CodeFingerprint>();

/**
 * What a step's code hash is made of (see {@link CodeFingerprint}): recorded with each step run
 * so `stackline runs explain` can say which function, declaration, module or package changed.
 */
export function stepCodeFingerprint(spec: StepSpec): CodeFingerprint {
  const compute = fingerprints.get(spec);
  return compute ? compute() : { hash: spec.codeHash, parts: {} };
}

/**
 * Code hashes fixed when a pipeline module was bundled for AWS (see `lib/bundle`). A bundler
 * prints functions differently from the TypeScript loader the CLI uses, so hashing the bundled
 * source would give every step a new cache key on AWS; the bundle instead carries the hashes its
 * steps have locally, and local and AWS runs share cache entries.
 */
export const PINNED_CODE_HASHES_GLOBAL = '__stacklineCodeHashes';

function pinnedCodeHash(name: string): string | undefined {
  const pinned = (globalThis as Record<string, unknown>)[PINNED_CODE_HASHES_GLOBAL] as
    | Record<string, string>
    | undefined;
  return pinned?.[name];
}

/** Pinned code hash parts, by step name (see {@link PINNED_CODE_HASHES_GLOBAL}). */
export const PINNED_CODE_PARTS_GLOBAL = '__stacklineCodeParts';

function pinnedCodeParts(name: string): Record<string, string> | undefined {
  const pinned = (globalThis as Record<string, unknown>)[PINNED_CODE_PARTS_GLOBAL] as
    | Record<string, Record<string, string>>
    | undefined;
  return pinned?.[name];
}

/**
 * Every step defined in this thread, by name. Kept on `globalThis` so that two copies of this module
 * (the CLI's build and a pipeline importing the sources) share it: an isolated attempt's worker
 * finds its step here after importing the step's module (see `lib/runtime/attempt-worker.ts`).
 */
const globals = globalThis as Record<symbol, unknown>;
const DEFINED_STEPS = Symbol.for('stackline.definedSteps');
const DEFINITION_FILES = Symbol.for('stackline.stepDefinitionFiles');
globals[DEFINED_STEPS] ??= new Map<string, StepSpec[]>();
globals[DEFINITION_FILES] ??= new WeakMap<StepSpec, string>();
const definedSteps = globals[DEFINED_STEPS] as Map<string, StepSpec[]>;
const definedInFiles = globals[DEFINITION_FILES] as WeakMap<StepSpec, string>;

/** The file whose top-level code (or a function it called) defined `spec`, when known. */
export function stepDefinitionFile(spec: StepSpec): string | undefined {
  return definedInFiles.get(spec);
}

/** Steps defined in this thread under `name` (several when a name is reused). */
export function definedStepsNamed(name: string): readonly StepSpec[] {
  return definedSteps.get(name) ?? [];
}

/**
 * Code fingerprint of every step defined in this process so far, by name (steps defined twice with
 * different code are left out: a name alone cannot tell them apart). Used by the bundler.
 */
export function definedStepFingerprints(): Record<string, CodeFingerprint> {
  const result: Record<string, CodeFingerprint> = {};
  for (const [name, specs] of definedSteps) {
    const hashes = new Set(specs.map((s) => s.codeHash));
    if (hashes.size === 1) result[name] = stepCodeFingerprint(specs[0]!);
  }
  return result;
}

/** Code hash of every step defined in this process so far, by name (see {@link definedStepFingerprints}). */
export function definedStepCodeHashes(): Record<string, string> {
  return Object.fromEntries(Object.entries(definedStepFingerprints()).map(([name, f]) => [name, f.hash]));
}

function normalizeOutput(name: string, stepName: string, declaration: OutputDeclaration): OutputOptions {
  if (declaration instanceof z.ZodType) return { schema: declaration };
  if (declaration && typeof declaration === 'object' && declaration.schema instanceof z.ZodType) {
    const problem = declaration.artifact === undefined ? undefined : nameProblem('artifact', declaration.artifact);
    if (problem !== undefined) {
      throw new PipelineDefinitionError(`Step "${stepName}", output "${name}": ${problem}`, {
        context: { step: stepName, output: name },
      });
    }
    return declaration;
  }
  throw new PipelineDefinitionError(
    `Step "${stepName}": output "${name}" must be a zod schema or { schema, materializer?, artifact? }.`,
    { context: { step: stepName, output: name } },
  );
}

/**
 * `codeVersion` as the string the code hash records: numbers are accepted (a version bump is
 * naturally written `codeVersion: 2`), anything else is a definition error naming the step.
 */
function normalizeCodeVersion(step: string, value: unknown): string | undefined {
  if (value === undefined || typeof value === 'string') return value;
  if (typeof value === 'number' && Number.isFinite(value)) return String(value);
  throw new PipelineDefinitionError(
    `Step "${step}": codeVersion must be a string or a finite number (got ${
      typeof value === 'number' ? String(value) : typeof value
    }); write e.g. codeVersion: '2'.`,
    { context: { step } },
  );
}

/**
 * Declares a step: a typed function with named inputs, parameters and outputs (zod schemas).
 * Call the returned value inside a {@link pipeline} body to wire it; its outputs are references
 * that other steps take as inputs, and that wiring is the pipeline's DAG.
 *
 * @example
 * const split = step(
 *   { name: 'split', inputs: { rows: Rows }, parameters: z.object({ testFraction: z.number().default(0.2) }),
 *     outputs: { train: Rows, test: Rows } },
 *   ({ inputs, params }) => splitRows(inputs.rows, params.testFraction),
 * );
 */
export function step<
  O extends OutputDeclarations,
  I extends InputDeclarations = Record<never, never>,
  P extends z.ZodType = z.ZodObject<Record<never, never>>,
>(config: StepConfig<I, P, O>, fn: StepFunction<I, P, O>): StepDefinition<I, P, O> {
  const { name, description, inputs, parameters, outputs, ...rest } = config;
  const nameError = nameProblem('step', name);
  if (nameError !== undefined) throw new PipelineDefinitionError(nameError);
  const codeVersion = normalizeCodeVersion(name, rest.codeVersion);
  if (rest.isolation !== undefined && rest.isolation !== 'in-process' && rest.isolation !== 'worker') {
    throw new PipelineDefinitionError(
      `Step "${name}": isolation must be 'in-process' or 'worker' (got ${JSON.stringify(rest.isolation)}).`,
      { context: { step: name } },
    );
  }
  const options = codeVersion === undefined ? rest : { ...rest, codeVersion };
  if (typeof fn !== 'function')
    throw new PipelineDefinitionError(`Step "${name}": the second argument must be the step function.`);
  const outputEntries = Object.entries(outputs ?? {});
  if (outputEntries.length === 0) {
    throw new PipelineDefinitionError(`Step "${name}" declares no outputs: declare at least one in \`outputs\`.`, {
      context: { step: name },
    });
  }
  const normalizedOutputs = Object.fromEntries(outputEntries.map(([k, d]) => [k, normalizeOutput(k, name, d)]));
  const definedIn = callerFile(THIS_FILE);
  const pinnedHash = pinnedCodeHash(name);
  const pinnedParts = pinnedCodeParts(name);
  let fingerprint: CodeFingerprint | undefined =
    pinnedHash === undefined ? undefined : { hash: pinnedHash, parts: pinnedParts ?? {} };
  const computeFingerprint = () => {
    fingerprint ??= fingerprintCode(
      fn as (...args: never[]) => unknown,
      codeVersion,
      definedIn === undefined ? undefined : { file: definedIn, stepName: name },
    );
    return fingerprint;
  };
  const spec: StepSpec = {
    name,
    ...(description === undefined ? {} : { description }),
    inputs: inputs ?? {},
    parameters: parameters ?? z.object({}),
    outputs: normalizedOutputs,
    options,
    get codeHash() {
      return computeFingerprint().hash;
    },
    fn: fn as StepSpec['fn'],
  };
  fingerprints.set(spec, computeFingerprint);
  if (definedIn !== undefined) definedInFiles.set(spec, definedIn);

  const seen = definedSteps.get(name);
  if (seen) seen.push(spec);
  else definedSteps.set(name, [spec]);

  const invoke = (refs?: Record<string, unknown>, invocation?: InvocationOptions<unknown>) => {
    const builder = currentBuilder();
    if (!builder) {
      throw new PipelineDefinitionError(
        `Step "${name}" was called outside a pipeline body. Call steps inside pipeline(config, body), or run the function directly for tests.`,
        { context: { step: name } },
      );
    }
    return builder.addInvocation(spec, refs ?? {}, (invocation ?? {}) as InvocationOptions<Metadata>);
  };
  const map = (refs: Record<string, unknown>, options: MapOptions<string, unknown>) => {
    const builder = currentBuilder();
    if (!builder) {
      throw new PipelineDefinitionError(`Step "${name}".map was called outside a pipeline body.`, {
        context: { step: name },
      });
    }
    return builder.addInvocation(spec, refs ?? {}, options as MapOptions<string, Metadata>);
  };
  Object.defineProperty(invoke, 'spec', { value: spec, enumerable: true });
  Object.defineProperty(invoke, 'map', { value: map, enumerable: true });
  Object.defineProperty(invoke, 'name', { value: name });
  return invoke as unknown as StepDefinition<I, P, O>;
}
