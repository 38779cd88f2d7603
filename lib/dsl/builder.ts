import { PipelineDefinitionError, ValidationError } from '../errors.ts';
import type { Metadata } from '../metadata/types.ts';
import { formatZodIssues } from '../util/zod-format.ts';
import { ARTIFACT_NAME, IDENTIFIER } from './names.ts';
import type { StepSpec } from './step.ts';
import type { InvocationOptions, OutputRef } from './types.ts';

/** One step invocation in a built pipeline graph. */
export interface StepNode {
  id: string;
  spec: StepSpec;
  /** Parameters after validation by the step's schema (defaults applied). */
  params: Metadata;
  /** Input name → the upstream output it reads. */
  inputs: Record<string, { stepId: string; output: string }>;
  /** Step ids this one waits for: its data dependencies plus `after`. */
  upstream: string[];
  cache?: boolean;
  /**
   * Fan-out: the step runs once per item of the list wired to input `input`; each output becomes
   * a list (a `collection` artifact) that downstream steps receive whole.
   */
  map?: { input: string; maxConcurrency?: number };
}

/** An existing artifact version a pipeline reads (see `externalArtifact`), resolved when a run starts. */
export interface ExternalArtifactNode {
  /** The pseudo step id that input references use (`$artifact:<name>@<version>`). */
  id: string;
  name: string;
  version: number | 'latest';
}

export const EXTERNAL_OUTPUT = 'value';

export interface PipelineGraph {
  pipeline: string;
  externals: ExternalArtifactNode[];
  /** In topological order (ties keep definition order), so the order is deterministic. */
  nodes: StepNode[];
  byId: ReadonlyMap<string, StepNode>;
  /** Step id → ids of the steps that depend on it. */
  downstream: ReadonlyMap<string, string[]>;
}

let active: GraphBuilder | undefined;

export function currentBuilder(): GraphBuilder | undefined {
  return active;
}

function isOutputRef(value: unknown): value is OutputRef<unknown> {
  return typeof value === 'object' && value !== null && (value as { kind?: unknown }).kind === 'output-ref';
}

/** Collects invocations while a pipeline body runs, then validates the graph as a whole. */
export class GraphBuilder {
  private readonly nodes: StepNode[] = [];
  private readonly ids = new Map<string, StepNode>();
  private readonly problems: string[] = [];
  private readonly afters = new Map<string, string[]>();
  private readonly externals = new Map<string, ExternalArtifactNode>();

  constructor(private readonly pipeline: string) {}

  /** Runs `body` with this builder active, then validates and returns the graph. */
  static build(pipeline: string, body: () => void): PipelineGraph {
    if (active) throw new PipelineDefinitionError(`Pipeline "${pipeline}" was built inside another pipeline's body.`);
    const builder = new GraphBuilder(pipeline);
    active = builder;
    try {
      const result = body() as unknown;
      if (result instanceof Promise) {
        throw new PipelineDefinitionError(
          `Pipeline "${pipeline}": the body must be synchronous (it only wires steps; step functions do the async work).`,
        );
      }
    } finally {
      active = undefined;
    }
    return builder.finish();
  }

  addExternal(name: string, version: number | 'latest'): OutputRef<unknown> {
    if (!ARTIFACT_NAME.test(name))
      this.problems.push(`externalArtifact(${JSON.stringify(name)}): invalid artifact name.`);
    if (version !== 'latest' && !(Number.isInteger(version) && version >= 1)) {
      this.problems.push(
        `externalArtifact("${name}"): version must be a number ≥ 1 or "latest" (got ${JSON.stringify(version)}).`,
      );
    }
    const id = `$artifact:${name}@${version}`;
    if (!this.externals.has(id)) this.externals.set(id, { id, name, version });
    return { kind: 'output-ref', stepId: id, output: EXTERNAL_OUTPUT };
  }

  addInvocation(
    spec: StepSpec,
    refs: Record<string, unknown>,
    options: InvocationOptions<Metadata> & { over?: string; maxConcurrency?: number },
  ): Record<string, OutputRef<unknown>> {
    const id = options.id ?? spec.name;
    const where = `step "${id}"${id === spec.name ? '' : ` (${spec.name})`}`;
    const previous = this.ids.get(id);
    if (previous) {
      this.problems.push(
        `Duplicate step id "${id}": step "${spec.name}" and step "${previous.spec.name}" both use it. Give one a distinct id: ${spec.name}(inputs, { id: '${id}_2' }).`,
      );
    }
    if (!IDENTIFIER.test(id))
      this.problems.push(`Step id ${JSON.stringify(id)} is invalid: use letters, digits, "_" or "-".`);

    const inputs: StepNode['inputs'] = {};
    const upstream = new Set<string>();
    for (const [inputName, ref] of Object.entries(refs)) {
      if (!(inputName in spec.inputs)) {
        const known = Object.keys(spec.inputs);
        this.problems.push(
          `${where} has no input "${inputName}" (declared inputs: ${known.length ? known.join(', ') : 'none'}).`,
        );
        continue;
      }
      if (!isOutputRef(ref)) {
        this.problems.push(
          `${where}: input "${inputName}" must be the output of another step (got ${typeof ref}). Pass constant values as parameters instead.`,
        );
        continue;
      }
      if (this.externals.has(ref.stepId)) {
        inputs[inputName] = { stepId: ref.stepId, output: ref.output };
        continue;
      }
      const producer = this.ids.get(ref.stepId);
      if (!producer) {
        this.problems.push(
          `${where}: input "${inputName}" refers to step "${ref.stepId}", which is not part of pipeline "${this.pipeline}".`,
        );
        continue;
      }
      if (!(ref.output in producer.spec.outputs)) {
        this.problems.push(
          `${where}: input "${inputName}" reads output "${ref.output}" of step "${ref.stepId}", which that step does not declare (it declares: ${Object.keys(producer.spec.outputs).join(', ')}).`,
        );
        continue;
      }
      inputs[inputName] = { stepId: ref.stepId, output: ref.output };
      upstream.add(ref.stepId);
    }
    for (const inputName of Object.keys(spec.inputs)) {
      if (!(inputName in refs)) this.problems.push(`${where}: required input "${inputName}" is not connected.`);
    }

    const parsed = spec.parameters.safeParse(options.params ?? {});
    if (!parsed.success) {
      throw new ValidationError(`Invalid parameters for ${where}: ${formatZodIssues(parsed.error)}`, {
        context: { step: id },
        cause: parsed.error,
      });
    }
    if (options.over !== undefined && !(options.over in spec.inputs)) {
      this.problems.push(
        `${where}: .map over "${options.over}", which is not one of its inputs (${Object.keys(spec.inputs).join(', ') || 'none'}).`,
      );
    }
    if (
      options.maxConcurrency !== undefined &&
      !(Number.isInteger(options.maxConcurrency) && options.maxConcurrency >= 1)
    ) {
      this.problems.push(`${where}: maxConcurrency must be a whole number ≥ 1.`);
    }
    const node: StepNode = {
      id,
      spec,
      params: (parsed.data ?? {}) as Metadata,
      inputs,
      upstream: [...upstream],
      ...(options.cache === undefined ? {} : { cache: options.cache }),
      ...(options.over === undefined
        ? {}
        : {
            map: {
              input: options.over,
              ...(options.maxConcurrency === undefined ? {} : { maxConcurrency: options.maxConcurrency }),
            },
          }),
    };
    if (options.after?.length) this.afters.set(id, options.after);
    if (!previous) this.ids.set(id, node);
    this.nodes.push(node);

    const outputs: Record<string, OutputRef<unknown>> = {};
    for (const output of Object.keys(spec.outputs)) outputs[output] = { kind: 'output-ref', stepId: id, output };
    // A destructured output the step does not declare would be `undefined` and fail later with a
    // vague message; a Proxy names the problem at the place it happens.
    return new Proxy(outputs, {
      get: (target, prop) => {
        if (typeof prop === 'string' && !(prop in target) && prop !== 'then' && prop !== 'toJSON') {
          this.problems.push(
            `${where} has no output "${prop}" (it declares: ${Object.keys(spec.outputs).join(', ')}).`,
          );
        }
        return Reflect.get(target, prop);
      },
    });
  }

  private finish(): PipelineGraph {
    for (const [id, after] of this.afters) {
      const node = this.ids.get(id)!;
      for (const dep of after) {
        if (!this.ids.has(dep))
          this.problems.push(
            `step "${id}": \`after\` names step "${dep}", which is not in pipeline "${this.pipeline}".`,
          );
        else if (!node.upstream.includes(dep)) node.upstream.push(dep);
      }
    }
    if (this.nodes.length === 0)
      this.problems.push(`Pipeline "${this.pipeline}" has no steps: call at least one step in its body.`);
    if (this.problems.length > 0) throw definitionError(this.pipeline, this.problems);

    const nodes = topologicalOrder(this.pipeline, this.nodes);
    const downstream = new Map<string, string[]>(nodes.map((n) => [n.id, []]));
    for (const node of nodes) for (const dep of node.upstream) downstream.get(dep)!.push(node.id);
    return {
      pipeline: this.pipeline,
      externals: [...this.externals.values()],
      nodes,
      byId: new Map(nodes.map((n) => [n.id, n])),
      downstream,
    };
  }
}

function definitionError(pipeline: string, problems: string[]): PipelineDefinitionError {
  const unique = [...new Set(problems)];
  return new PipelineDefinitionError(
    `Pipeline "${pipeline}" is invalid:\n${unique.map((p) => `  - ${p}`).join('\n')}`,
    { context: { pipeline, problems: unique } },
  );
}

/** Kahn's algorithm; ties broken by definition order. Reports a cycle with its path. */
function topologicalOrder(pipeline: string, nodes: StepNode[]): StepNode[] {
  const index = new Map(nodes.map((n, i) => [n.id, i]));
  const remaining = new Map(nodes.map((n) => [n.id, n.upstream.length]));
  const dependents = new Map<string, string[]>(nodes.map((n) => [n.id, []]));
  for (const n of nodes) for (const dep of n.upstream) dependents.get(dep)!.push(n.id);
  const ready = nodes.filter((n) => n.upstream.length === 0).map((n) => n.id);
  const ordered: StepNode[] = [];
  while (ready.length > 0) {
    ready.sort((a, b) => index.get(a)! - index.get(b)!);
    const id = ready.shift()!;
    ordered.push(nodes[index.get(id)!]!);
    for (const d of dependents.get(id)!) {
      const left = remaining.get(d)! - 1;
      remaining.set(d, left);
      if (left === 0) ready.push(d);
    }
  }
  if (ordered.length < nodes.length) {
    const stuck = new Set(nodes.filter((n) => remaining.get(n.id)! > 0).map((n) => n.id));
    throw definitionError(pipeline, [
      `Cycle between steps: ${findCycle(nodes, stuck).join(' -> ')}. Remove one of the dependencies (an \`after\` or an input).`,
    ]);
  }
  return ordered;
}

function findCycle(nodes: StepNode[], stuck: Set<string>): string[] {
  const byId = new Map(nodes.map((n) => [n.id, n]));
  const start = [...stuck][0]!;
  const path: string[] = [];
  const seen = new Map<string, number>();
  let current = start;
  while (!seen.has(current)) {
    seen.set(current, path.length);
    path.push(current);
    current = byId.get(current)!.upstream.find((u) => stuck.has(u))!;
  }
  return [...path.slice(seen.get(current)!), current].reverse();
}
