import { existsSync } from 'node:fs';
import { chmod, mkdir, mkdtemp, readdir, readFile, rm, stat, symlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { LocalArtifactStore } from '../../../lib/artifacts/local-artifact-store.ts';
import type { Materializer, MaterializerContext } from '../../../lib/artifacts/materializer.ts';
import { type DirectoryManifest, MaterializerRegistry } from '../../../lib/artifacts/materializers.ts';
import { ConflictError, ValidationError } from '../../../lib/errors.ts';
import { canonicalJson, sha256Hex } from '../../../lib/util/canonical-json.ts';
import { fingerprint, patternBytes, readAll } from '../../conformance/artifact-store.conformance.ts';

let root: string;
let context: MaterializerContext;
let registry: MaterializerRegistry;

beforeEach(async () => {
  root = await mkdtemp(join(tmpdir(), 'stackline-materializers-'));
  context = { store: new LocalArtifactStore(join(root, 'store')) };
  registry = MaterializerRegistry.withBuiltins({ cacheDir: join(root, 'store', 'materialized') });
});

afterEach(async () => {
  await rm(root, { recursive: true, force: true });
});

describe('canonicalJson', () => {
  it('sorts object keys at every depth', () => {
    expect(canonicalJson({ b: [{ d: 1, c: 2 }], a: { z: null, y: 'x' } })).toBe(
      '{"a":{"y":"x","z":null},"b":[{"c":2,"d":1}]}',
    );
  });

  it('leaves out undefined object properties and honours toJSON, like JSON.stringify', () => {
    expect(canonicalJson({ kept: 1, dropped: undefined, at: new Date(0) })).toBe(
      '{"at":"1970-01-01T00:00:00.000Z","kept":1}',
    );
  });

  it('accepts the same object reached twice when it is not a cycle', () => {
    const shared = { n: 1 };
    expect(canonicalJson({ a: shared, b: [shared] })).toBe('{"a":{"n":1},"b":[{"n":1}]}');
  });

  it.each([
    ['NaN', { score: Number.NaN }, '$.score is the number NaN'],
    ['undefined in an array', [1, undefined], '$[1] is undefined'],
    ['a hole in a sparse array', new Array(3), '$[0] is undefined'],
    ['a Set', { tags: new Set(['a']) }, '$.tags is a Set'],
  ])('refuses %s', (_label, value, message) => {
    expect(() => canonicalJson(value)).toThrow(ValidationError);
    expect(() => canonicalJson(value)).toThrow(message);
  });

  it('hashes strings as UTF-8 with sha256Hex', () => {
    expect(sha256Hex('')).toBe('e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855');
    expect(sha256Hex('é')).toBe(sha256Hex(Buffer.from('é', 'utf8')));
  });
});

describe('json materializer', () => {
  it.each([
    ['an object', { accuracy: 0.97, labels: ['a', 'b'], nested: { ok: true } }, 'json:object'],
    ['an array', [1, 'two', null], 'json:array'],
    ['a number', 42.5, 'json:number'],
    ['a string', 'text as JSON', 'json:string'],
    ['a boolean', false, 'json:boolean'],
    ['null', null, 'json:null'],
  ])('round trips %s with its JSON type as dataType', async (_label, value, dataType) => {
    const saved = await registry.get('json').save(value, context);
    expect(saved.dataType).toBe(dataType);
    expect(await registry.get('json').load(saved, context)).toEqual(value);
  });

  it('stores the same value with the same bytes and hash whatever its key order', async () => {
    const first = await registry.get('json').save({ b: 1, a: { y: 2, x: 3 } }, context);
    const second = await registry.get('json').save({ a: { x: 3, y: 2 }, b: 1 }, context);
    expect(second.contentHash).toBe(first.contentHash);
    expect((await context.store.getBytes(first.contentHash)).toString()).toBe('{"a":{"x":3,"y":2},"b":1}');
  });

  it('refuses a value JSON cannot represent, naming where it is', async () => {
    const save = registry.get('json').save({ model: { predict: () => 1 } }, context);
    await expect(save).rejects.toBeInstanceOf(ValidationError);
    await expect(save).rejects.toThrow('$.model.predict is a function');
  });
});

describe('string materializer', () => {
  it('round trips text as UTF-8', async () => {
    const saved = await registry.get('string').save('héllo ✓', context);
    expect(saved.dataType).toBe('string');
    expect(saved.size).toBe(Buffer.byteLength('héllo ✓'));
    expect(await registry.get('string').load(saved, context)).toBe('héllo ✓');
  });
});

describe('binary materializer', () => {
  it('round trips a Buffer', async () => {
    const bytes = patternBytes(100_000, 1);
    const saved = await registry.get('binary').save(bytes, context);
    expect(saved.dataType).toBe('binary');
    const loaded = await registry.get<Buffer>('binary').load(saved, context);
    expect(Buffer.isBuffer(loaded)).toBe(true);
    expect(fingerprint(loaded)).toEqual(fingerprint(bytes));
  });

  it('loads a saved Uint8Array back as a Buffer with the same bytes', async () => {
    const bytes = new Uint8Array([0, 1, 2, 250, 255]);
    const saved = await registry.get('binary').save(bytes, context);
    const loaded = await registry.get<Buffer>('binary').load(saved, context);
    expect(Buffer.isBuffer(loaded)).toBe(true);
    expect([...loaded]).toEqual([...bytes]);
  });
});

describe('file materializer', () => {
  it('round trips a file to a read-only local path with the same bytes', async () => {
    const bytes = patternBytes(1_000_000, 2);
    const path = join(root, 'model.bin');
    await writeFile(path, bytes);
    const saved = await registry.get('file').save(path, context);
    expect(saved).toMatchObject({ dataType: 'file', size: bytes.length });

    const loaded = await registry.get<string>('file').load(saved, context);
    expect(loaded).not.toBe(path);
    expect(fingerprint(await readFile(loaded))).toEqual(fingerprint(bytes));
    expect((await stat(loaded)).mode & 0o222).toBe(0);
  });

  it('refuses a path that does not exist', async () => {
    const save = registry.get('file').save(join(root, 'nope.bin'), context);
    await expect(save).rejects.toBeInstanceOf(ValidationError);
    await expect(save).rejects.toThrow('does not exist');
  });

  it('refuses a directory', async () => {
    await expect(registry.get('file').save(root, context)).rejects.toThrow('is not a regular file');
  });
});

describe('stream materializer', () => {
  it('round trips a Readable, loading it back as a Readable', async () => {
    const bytes = patternBytes(3_000_000, 3);
    const saved = await registry
      .get('stream')
      .save(Readable.from([bytes.subarray(0, 1_000_000), bytes.subarray(1_000_000)]), context);
    expect(saved).toMatchObject({ dataType: 'stream', size: bytes.length });
    const loaded = await registry.get('stream').load(saved, context);
    expect(loaded).toBeInstanceOf(Readable);
    expect(fingerprint(await readAll(loaded as Readable))).toEqual(fingerprint(bytes));
  });

  it('saves an async generator of chunks', async () => {
    async function* generate() {
      yield Buffer.from('chunk one, ');
      yield Buffer.from('chunk two');
    }
    const saved = await registry.get('stream').save(generate(), context);
    expect((await readAll((await registry.get('stream').load(saved, context)) as Readable)).toString()).toBe(
      'chunk one, chunk two',
    );
  });
});

describe('directory materializer', () => {
  async function makeTree(dir: string): Promise<void> {
    await mkdir(join(dir, 'weights', 'layer 1'), { recursive: true });
    await mkdir(join(dir, 'empty-dir'), { recursive: true });
    await writeFile(join(dir, 'config.json'), '{"layers":2}');
    await writeFile(join(dir, 'weights', 'layer 1', 'w.bin'), patternBytes(300_000, 4));
    await writeFile(join(dir, 'weights', 'b.bin'), patternBytes(1_000, 5));
    await writeFile(join(dir, 'weights', 'copy-of-config.json'), '{"layers":2}');
    await writeFile(join(dir, 'run.sh'), '#!/bin/sh\necho hi\n');
    await chmod(join(dir, 'run.sh'), 0o755);
  }

  it('round trips a tree of nested files with their permission bits', async () => {
    const source = join(root, 'model-dir');
    await makeTree(source);
    const saved = await registry.get('directory').save(source, context);
    expect(saved.dataType).toBe('directory');

    const loaded = await registry.get<string>('directory').load(saved, context);
    expect(loaded).toBe(join(root, 'store', 'materialized', saved.contentHash.slice('sha256:'.length)));
    const files = (await readdir(loaded, { recursive: true, withFileTypes: true }))
      .filter((entry) => entry.isFile())
      .map((entry) => join(entry.parentPath, entry.name).slice(loaded.length + 1))
      .sort();
    expect(files).toEqual([
      'config.json',
      'run.sh',
      'weights/b.bin',
      'weights/copy-of-config.json',
      'weights/layer 1/w.bin',
    ]);
    for (const file of files) {
      expect(fingerprint(await readFile(join(loaded, file)))).toEqual(fingerprint(await readFile(join(source, file))));
    }
    expect((await stat(join(loaded, 'run.sh'))).mode & 0o777).toBe(0o555);
    expect((await stat(join(loaded, 'config.json'))).mode & 0o777).toBe(0o444);
  });

  it('stores a manifest of the files as the artifact, each file as its own blob', async () => {
    const source = join(root, 'model-dir');
    await makeTree(source);
    const saved = await registry.get('directory').save(source, context);
    const manifest = JSON.parse((await context.store.getBytes(saved.contentHash)).toString()) as DirectoryManifest;
    expect(manifest.files.map((file) => file.path)).toEqual([
      'config.json',
      'run.sh',
      'weights/b.bin',
      'weights/copy-of-config.json',
      'weights/layer 1/w.bin',
    ]);
    const config = `sha256:${sha256Hex('{"layers":2}')}`;
    expect(manifest.files[0]).toEqual({ path: 'config.json', contentHash: config, size: 12, mode: expect.any(Number) });
    expect(manifest.files[3]?.contentHash).toBe(config);
    expect(manifest.files[1]?.mode).toBe(0o755);
  });

  it('gives the same tree the same hash, and reuses its materialized copy', async () => {
    const source = join(root, 'model-dir');
    await makeTree(source);
    const first = await registry.get('directory').save(source, context);
    const second = await registry.get('directory').save(source, context);
    expect(second.contentHash).toBe(first.contentHash);

    const loaded = await registry.get<string>('directory').load(first, context);
    const marker = (await stat(join(loaded, 'config.json'))).ino;
    const [again, concurrent] = await Promise.all([
      registry.get<string>('directory').load(first, context),
      registry.get<string>('directory').load(first, context),
    ]);
    expect([again, concurrent]).toEqual([loaded, loaded]);
    expect((await stat(join(loaded, 'config.json'))).ino).toBe(marker);
  });

  it('recreates a tree when loaded concurrently from a cold cache, leaving no temp directories', async () => {
    const source = join(root, 'model-dir');
    await makeTree(source);
    const saved = await registry.get('directory').save(source, context);
    const loads = await Promise.all(
      Array.from({ length: 4 }, () => registry.get<string>('directory').load(saved, context)),
    );
    expect(new Set(loads).size).toBe(1);
    expect(existsSync(join(loads[0] as string, 'weights', 'layer 1', 'w.bin'))).toBe(true);
    expect(await readdir(join(root, 'store', 'materialized'))).toEqual([saved.contentHash.slice('sha256:'.length)]);
  });

  it('round trips an empty directory', async () => {
    const source = join(root, 'empty');
    await mkdir(source);
    const saved = await registry.get('directory').save(source, context);
    expect(await readdir(await registry.get<string>('directory').load(saved, context))).toEqual([]);
  });

  it('refuses a tree holding a symbolic link', async () => {
    const source = join(root, 'linked');
    await mkdir(source);
    await writeFile(join(source, 'real.txt'), 'real');
    await symlink(join(source, 'real.txt'), join(source, 'link.txt'));
    const save = registry.get('directory').save(source, context);
    await expect(save).rejects.toBeInstanceOf(ValidationError);
    await expect(save).rejects.toThrow('link.txt is a symbolic link');
  });

  it('refuses a manifest whose paths would escape the directory', async () => {
    const file = await context.store.put('x');
    const evil = await context.store.put(
      canonicalJson({ files: [{ path: '../escape.txt', contentHash: file.contentHash, size: 1, mode: 0o644 }] }),
    );
    const load = registry.get('directory').load({ contentHash: evil.contentHash, dataType: 'directory' }, context);
    await expect(load).rejects.toBeInstanceOf(ValidationError);
    expect(existsSync(join(root, 'store', 'escape.txt'))).toBe(false);
  });
});

describe('MaterializerRegistry', () => {
  describe('pick', () => {
    it.each([
      ['a Buffer', Buffer.from('x'), 'binary'],
      ['a Uint8Array', new Uint8Array([1]), 'binary'],
      ['a Readable', Readable.from(['x']), 'stream'],
      ['an async generator', (async function* () {})(), 'stream'],
      ['a string', 'x', 'string'],
      ['an object', { a: 1 }, 'json'],
      ['an array', [1, 2], 'json'],
      ['a number', 3, 'json'],
      ['null', null, 'json'],
      ['a Date', new Date(0), 'json'],
    ])('picks for %s the %s materializer', (_label, value, name) => {
      expect(registry.pick(value).name).toBe(name);
    });

    const circular: Record<string, unknown> = {};
    circular.self = circular;
    it.each([
      ['a function', () => 1, 'is a function'],
      ['a symbol', Symbol('s'), 'is a symbol'],
      ['a bigint', 10n, 'is a bigint'],
      ['undefined', undefined, 'is undefined'],
      ['a circular structure', circular, '$.self is a circular reference'],
      ['a Map nested in an object', { lookup: new Map() }, '$.lookup is a Map'],
    ])('refuses %s, saying to declare a materializer', (_label, value, reason) => {
      expect(() => registry.pick(value)).toThrow(ValidationError);
      expect(() => registry.pick(value)).toThrow(reason);
      expect(() => registry.pick(value)).toThrow('Declare a materializer for this output');
    });

    it('never picks file or directory for a string', () => {
      expect(registry.pick('/tmp/some/path').name).toBe('string');
    });
  });

  describe('get', () => {
    it('rejects an unknown name, listing the registered ones', () => {
      expect(() => registry.get('parquet')).toThrow(ValidationError);
      expect(() => registry.get('parquet')).toThrow(
        'Unknown materializer "parquet". Registered materializers: json, string, stream, binary, file, directory.',
      );
    });
  });

  describe('custom materializers', () => {
    class Matrix {
      constructor(readonly rows: number[][]) {}
    }
    const matrixMaterializer: Materializer<Matrix> = {
      name: 'matrix',
      canHandle: (value) => value instanceof Matrix,
      save: async (matrix, { store }) => ({ ...(await store.put(JSON.stringify(matrix.rows))), dataType: 'matrix' }),
      load: async (ref, { store }) => new Matrix(JSON.parse((await store.getBytes(ref.contentHash)).toString())),
    };

    it('is picked ahead of the built-ins for the values it handles, and round trips', async () => {
      registry.register(matrixMaterializer);
      const matrix = new Matrix([
        [1, 2],
        [3, 4],
      ]);
      expect(registry.pick(matrix).name).toBe('matrix');
      const saved = await registry.save(matrix, context);
      expect(saved).toMatchObject({ materializer: 'matrix', dataType: 'matrix' });
      const loaded = await registry.load(saved, context);
      expect(loaded).toBeInstanceOf(Matrix);
      expect((loaded as Matrix).rows).toEqual(matrix.rows);
      expect(registry.pick({ plain: true }).name).toBe('json');
    });

    it('refuses a second materializer with a taken name', () => {
      expect(() => registry.register({ ...matrixMaterializer, name: 'json' })).toThrow(ConflictError);
    });
  });

  describe('save and load', () => {
    it('records which materializer saved a value and loads it back with that one', async () => {
      const saved = await registry.save({ accuracy: 0.9 }, context);
      expect(saved.materializer).toBe('json');
      expect(await registry.load(saved, context)).toEqual({ accuracy: 0.9 });
    });

    it('uses the materializer an output names instead of picking', async () => {
      const path = join(root, 'weights.bin');
      await writeFile(path, 'weights');
      const saved = await registry.save(path, context, 'file');
      expect(saved).toMatchObject({ materializer: 'file', dataType: 'file' });
      expect(await readFile((await registry.load(saved, context)) as string, 'utf8')).toBe('weights');
    });
  });
});
