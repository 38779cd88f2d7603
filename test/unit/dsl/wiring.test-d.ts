import { describe, expectTypeOf, it } from 'vitest';
import { z } from 'zod';
import type { OutputRef } from '../../../lib/dsl/types.ts';
import { pipeline, step } from '../../../lib/index.ts';

const Rows = z.array(z.object({ x: z.number(), label: z.string() }));

const load = step({ name: 'load', outputs: { rows: Rows, count: z.number() } }, () => ({ rows: [], count: 0 }));
const count = step(
  {
    name: 'count',
    inputs: { rows: Rows },
    parameters: z.object({ min: z.number().default(1) }),
    outputs: { n: z.number() },
  },
  ({ inputs, params }) => {
    expectTypeOf(inputs.rows).toEqualTypeOf<{ x: number; label: string }[]>();
    expectTypeOf(params.min).toEqualTypeOf<number>();
    return { n: inputs.rows.length };
  },
);
const shout = step({ name: 'shout', inputs: { text: z.string() }, outputs: { loud: z.string() } }, ({ inputs }) => ({
  loud: inputs.text.toUpperCase(),
}));

describe('pipeline wiring types', () => {
  it('gives each output a typed reference', () => {
    pipeline({ name: 'types_ok' }, () => {
      const outs = load();
      expectTypeOf(outs.rows).toEqualTypeOf<OutputRef<{ x: number; label: string }[]>>();
      expectTypeOf(outs.count).toEqualTypeOf<OutputRef<number>>();
      count({ rows: outs.rows }, { params: { min: 2 } });
    });
  });

  it('rejects wiring an output of an incompatible type', () => {
    pipeline({ name: 'types_bad' }, () => {
      const { rows, count: n } = load();
      // @ts-expect-error a number output cannot feed a string input
      shout({ text: n });
      // @ts-expect-error an array of rows cannot feed a string input
      shout({ text: rows });
      // @ts-expect-error inputs are required when the step declares them
      shout();
      // @ts-expect-error an undeclared input name
      count({ rows, extra: rows });
      // @ts-expect-error parameters are checked against the step's schema
      count({ rows }, { params: { min: 'three' } });
    });
  });

  it('rejects a step function whose return value does not match its outputs', () => {
    // @ts-expect-error `n` must be a number
    step({ name: 'bad_return', outputs: { n: z.number() } }, () => ({ n: 'one' }));
    // @ts-expect-error a declared output is missing from the return value
    step({ name: 'missing_output', outputs: { a: z.number(), b: z.number() } }, () => ({ a: 1 }));
  });

  it('types pipeline parameters from the schema', () => {
    pipeline({ name: 'typed_params', parameters: z.object({ seed: z.number().default(7) }) }, (params) => {
      expectTypeOf(params.seed).toEqualTypeOf<number>();
      load();
    });
  });

  it('types fan-out: a list feeds the mapped input and every output comes back as a list', () => {
    const perRow = step(
      {
        name: 'per_row',
        inputs: { row: z.object({ x: z.number(), label: z.string() }), scale: z.number() },
        outputs: { y: z.number() },
      },
      ({ inputs }) => ({ y: inputs.row.x * inputs.scale }),
    );
    pipeline({ name: 'fan_types' }, () => {
      const { rows, count: n } = load();
      const { y } = perRow.map({ row: rows, scale: n }, { over: 'row' });
      expectTypeOf(y).toEqualTypeOf<OutputRef<number[]>>();
      // @ts-expect-error the mapped input needs a list of rows, not a number
      perRow.map({ row: n, scale: n }, { over: 'row' });
      // @ts-expect-error `over` must name one of the step's inputs
      perRow.map({ row: rows, scale: n }, { over: 'rows' });
      // @ts-expect-error a list of numbers is not what `shout` takes
      shout({ text: y });
    });
  });
});
