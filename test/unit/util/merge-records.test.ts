import { setFlagsFromString } from 'node:v8';
import { describe, expect, it } from 'vitest';
import { mergeRecords } from '../../../lib/util/merge-records.ts';

// V8's own check of whether two objects share a hidden class (compiled after the flag is set).
setFlagsFromString('--allow-natives-syntax');
const haveSameMap = new Function('a', 'b', 'return %HaveSameMap(a, b)') as (a: object, b: object) => boolean;

describe('mergeRecords', () => {
  it('merges like the object spread: later parts win, undefined parts are skipped', () => {
    const merged = mergeRecords<Record<string, unknown>>({ a: 1, b: 2 }, undefined, { b: 3, c: { d: 4 } });
    expect(merged).toEqual({ a: 1, b: 3, c: { d: 4 } });
    expect(Object.keys(merged)).toEqual(['a', 'b', 'c']);
  });

  it('keeps a key named __proto__ an ordinary property, as the spread does', () => {
    const parsed = JSON.parse('{"__proto__": {"polluted": true}, "x": 1}') as Record<string, unknown>;
    const merged = mergeRecords<Record<string, unknown>>(parsed, { y: 2 });
    expect(Object.getPrototypeOf(merged)).toBe(Object.prototype);
    expect(Object.keys(merged)).toEqual(['__proto__', 'x', 'y']);
    expect((merged as { polluted?: boolean }).polluted).toBeUndefined();
  });

  it('gives every merge of the same keys one hidden class, however many are made', () => {
    // Warm the call site past its first states, as a run's thousandth step would.
    const make = (i: number) =>
      mergeRecords<Record<string, unknown>>({ id: `srun_${i}`, status: 'running' }, { metadata: { i } });
    for (let i = 0; i < 100; i++) make(i);
    expect(haveSameMap(make(1000), make(1001))).toBe(true);
  });
});
