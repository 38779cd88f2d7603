import { createHash } from 'node:crypto';
import { ValidationError } from '../errors.ts';

/**
 * Serializes `value` as JSON with object keys sorted, so equal values always give the same text
 * (and so the same content hash or cache key), whatever order their keys were set in.
 *
 * Follows `JSON.stringify` (`toJSON` is honoured, so a `Date` becomes its ISO string; object
 * properties whose value is `undefined` are left out) but refuses values JSON would silently change
 * or drop instead of representing: functions, symbols, bigints, `undefined` outside an object
 * property, `NaN`/`Infinity`, `Map`/`Set`/typed arrays, and circular references. (A `Buffer` has a
 * `toJSON`, so, as with `JSON.stringify`, it becomes `{"type":"Buffer","data":[...]}`.)
 *
 * @throws ValidationError naming where in the value the offending part is (`$.a[2].b`).
 * @example
 * canonicalJson({ b: 1, a: [true, null] }); // '{"a":[true,null],"b":1}'
 */
export function canonicalJson(value: unknown): string {
  return serialize(value, '', '$', new Set(), false) as string;
}

/** Lowercase hex SHA-256 of `data` (strings are hashed as UTF-8). */
export function sha256Hex(data: string | Uint8Array): string {
  return createHash('sha256').update(data).digest('hex');
}

function serialize(
  value: unknown,
  key: string,
  path: string,
  ancestors: Set<object>,
  isProperty: boolean,
): string | undefined {
  if (value !== null && typeof value === 'object' && typeof (value as { toJSON?: unknown }).toJSON === 'function') {
    value = (value as { toJSON: (key: string) => unknown }).toJSON(key);
  }
  switch (typeof value) {
    case 'string':
    case 'boolean':
      return JSON.stringify(value);
    case 'number':
      if (!Number.isFinite(value)) throw unrepresentable(path, `the number ${value}`);
      return JSON.stringify(value);
    case 'undefined':
      if (isProperty) return undefined;
      throw unrepresentable(path, 'undefined');
    case 'function':
    case 'symbol':
    case 'bigint':
      throw unrepresentable(path, `a ${typeof value}`);
  }
  if (value === null) return 'null';
  const object = value as object;
  if (ancestors.has(object)) throw unrepresentable(path, 'a circular reference');
  const unsupported = unsupportedObjectKind(object);
  if (unsupported) throw unrepresentable(path, unsupported);

  ancestors.add(object);
  let text: string;
  if (Array.isArray(object)) {
    const items: string[] = [];
    // An index loop rather than `map`, which skips the holes of sparse arrays.
    for (let index = 0; index < object.length; index++) {
      items.push(serialize(object[index], String(index), `${path}[${index}]`, ancestors, false) as string);
    }
    text = `[${items.join(',')}]`;
  } else {
    const record = object as Record<string, unknown>;
    const members: string[] = [];
    for (const key of Object.keys(record).sort()) {
      const member = serialize(record[key], key, `${path}.${key}`, ancestors, true);
      if (member !== undefined) members.push(`${JSON.stringify(key)}:${member}`);
    }
    text = `{${members.join(',')}}`;
  }
  ancestors.delete(object);
  return text;
}

/** Objects `JSON.stringify` would turn into `{}` or an index-keyed object, losing what they hold. */
function unsupportedObjectKind(object: object): string | undefined {
  if (object instanceof Map) return 'a Map';
  if (object instanceof Set) return 'a Set';
  if (object instanceof WeakMap || object instanceof WeakSet) return 'a weak collection';
  if (ArrayBuffer.isView(object) || object instanceof ArrayBuffer) return `binary data (${object.constructor.name})`;
  if (object instanceof Promise) return 'a Promise';
  if (object instanceof RegExp) return 'a RegExp';
  return undefined;
}

function unrepresentable(path: string, what: string): ValidationError {
  return new ValidationError(`The value at ${path} is ${what}, which JSON cannot represent.`, {
    context: { path },
  });
}
