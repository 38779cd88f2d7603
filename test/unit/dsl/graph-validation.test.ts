import { describe, expect, it } from 'vitest';
import { z } from 'zod';
import { PINNED_CODE_HASHES_GLOBAL } from '../../../lib/dsl/step.ts';
import { PipelineDefinitionError, pipeline, step, ValidationError } from '../../../lib/index.ts';

const source = step({ name: 'source', outputs: { n: z.number(), s: z.string() } }, () => ({ n: 1, s: 'a' }));
const double = step({ name: 'double', inputs: { n: z.number() }, outputs: { n: z.number() } }, ({ inputs }) => ({
  n: inputs.n * 2,
}));
const join = step(
  { name: 'join', inputs: { a: z.number(), b: z.number() }, outputs: { sum: z.number() } },
  ({ inputs }) => ({ sum: inputs.a + inputs.b }),
);

function buildError(fn: () => void): PipelineDefinitionError {
  try {
    fn();
  } catch (error) {
    if (error instanceof PipelineDefinitionError) return error;
    throw error;
  }
  throw new Error('expected a PipelineDefinitionError');
}

describe('pipeline graph validation', () => {
  it('orders a diamond topologically and records each step upstream', () => {
    const p = pipeline({ name: 'diamond' }, () => {
      const { n } = source();
      const left = double({ n }, { id: 'left' });
      const right = double({ n }, { id: 'right' });
      join({ a: left.n, b: right.n });
    });
    const graph = p.build({});
    expect(graph.nodes.map((n) => n.id)).toEqual(['source', 'left', 'right', 'join']);
    expect(graph.byId.get('join')!.upstream.sort()).toEqual(['left', 'right']);
    expect(graph.byId.get('join')!.inputs).toEqual({
      a: { stepId: 'left', output: 'n' },
      b: { stepId: 'right', output: 'n' },
    });
    expect(graph.downstream.get('source')).toEqual(['left', 'right']);
  });

  it('reports a duplicate step id naming both steps and how to fix it', () => {
    const p = pipeline({ name: 'dupes' }, () => {
      const { n } = source();
      double({ n });
      double({ n });
    });
    const error = buildError(() => p.build({}));
    expect(error.message).toContain('Duplicate step id "double"');
    expect(error.message).toContain("{ id: 'double_2' }");
  });

  it('reports a cycle created with `after`, with its path', () => {
    const p = pipeline({ name: 'cyclic' }, () => {
      const { n } = source();
      const a = double({ n }, { id: 'a', after: ['b'] });
      double({ n: a.n }, { id: 'b' });
    });
    const error = buildError(() => p.build({}));
    expect(error.message).toMatch(/Cycle between steps: (a -> b -> a|b -> a -> b)/);
  });

  it('reports an unknown input name with the declared inputs', () => {
    const p = pipeline({ name: 'unknown_input' }, () => {
      const { n } = source();
      (double as unknown as (i: object) => void)({ n, m: n });
    });
    const error = buildError(() => p.build({}));
    expect(error.message).toContain('step "double" has no input "m" (declared inputs: n)');
  });

  it('reports an unconnected required input', () => {
    const p = pipeline({ name: 'unconnected' }, () => {
      source();
      (double as unknown as (i: object) => void)({});
    });
    expect(buildError(() => p.build({})).message).toContain('step "double": required input "n" is not connected');
  });

  it('reports reading an output that the step does not declare', () => {
    const p = pipeline({ name: 'undeclared_output' }, () => {
      const outs = source() as unknown as Record<string, never>;
      double({ n: outs.missing! });
    });
    const error = buildError(() => p.build({}));
    expect(error.message).toContain('step "source" has no output "missing" (it declares: n, s)');
  });

  it('reports an input wired to a step of another pipeline', () => {
    let leaked: unknown;
    pipeline({ name: 'first' }, () => {
      leaked = source().n;
    }).build({});
    const p = pipeline({ name: 'second' }, () => {
      double({ n: leaked as never });
    });
    expect(buildError(() => p.build({})).message).toContain(
      'refers to step "source", which is not part of pipeline "second"',
    );
  });

  it('reports a constant passed where a step output is expected', () => {
    const p = pipeline({ name: 'constant' }, () => {
      double({ n: 3 as never });
    });
    expect(buildError(() => p.build({})).message).toContain('input "n" must be the output of another step');
  });

  it('lists every problem at once', () => {
    const p = pipeline({ name: 'many' }, () => {
      const { n } = source();
      double({ n });
      double({ n });
      (join as unknown as (i: object) => void)({ a: n });
    });
    const error = buildError(() => p.build({}));
    expect((error.context.problems as string[]).length).toBe(2);
  });

  it('rejects a step called outside a pipeline body', () => {
    expect(() => source()).toThrow(/called outside a pipeline body/);
  });

  it('rejects invalid step and pipeline names and steps without outputs', () => {
    expect(() => step({ name: 'has space', outputs: { a: z.number() } }, () => ({ a: 1 }))).toThrow(
      PipelineDefinitionError,
    );
    expect(() => pipeline({ name: '' }, () => {})).toThrow(/Pipeline name "" is invalid/);
    expect(() => step({ name: 'nothing', outputs: {} }, () => ({}))).toThrow(/declares no outputs/);
  });

  it('validates step parameters at build time, naming the step and the field', () => {
    const param = step(
      { name: 'param', parameters: z.object({ k: z.number().int().positive() }), outputs: { k: z.number() } },
      ({ params }) => ({ k: params.k }),
    );
    const p = pipeline({ name: 'bad_params' }, () => {
      param({}, { params: { k: -1 } });
    });
    expect(() => p.build({})).toThrow(ValidationError);
    expect(() => p.build({})).toThrow(/Invalid parameters for step "param": k: /);
  });

  it('validates pipeline parameters with defaults and names the bad field', () => {
    const p = pipeline({ name: 'pp', parameters: z.object({ trees: z.number().int().default(10) }) }, () => {
      source();
    });
    expect(p.parseParameters({})).toEqual({ trees: 10 });
    expect(() => p.parseParameters({ trees: 'many' })).toThrow(/Invalid parameters for pipeline "pp": trees: /);
  });

  it('uses a code hash pinned by a bundle instead of hashing the printed source', () => {
    const key = PINNED_CODE_HASHES_GLOBAL as keyof typeof globalThis;
    const unpinned = step({ name: 'pinned_probe', outputs: { n: z.number() } }, () => ({ n: 1 })).spec.codeHash;
    Object.assign(globalThis, { [key]: { pinned_probe: 'f'.repeat(64) } });
    try {
      const pinned = step({ name: 'pinned_probe', outputs: { n: z.number() } }, () => ({ n: 1 })).spec.codeHash;
      expect(pinned).toBe('f'.repeat(64));
      expect(unpinned).toMatch(/^[0-9a-f]{64}$/);
      expect(unpinned).not.toBe(pinned);
    } finally {
      delete (globalThis as Record<string, unknown>)[key];
    }
  });
});
