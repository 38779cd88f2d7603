import { constants } from 'node:fs';
import { chmod, copyFile, mkdir, mkdtemp, readdir, rename, rm, stat } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { Readable } from 'node:stream';
import { z } from 'zod';
import { ConflictError, StacklineError, ValidationError } from '../errors.ts';
import { canonicalJson } from '../util/canonical-json.ts';
import { mergeRecords } from '../util/merge-records.ts';
import type { MaterializedValue, Materializer, MaterializerContext } from './materializer.ts';

/** What a saved output records: the stored value plus the materializer that can load it back. */
export interface SavedArtifact extends MaterializedValue {
  materializer: string;
}

/** A reference to a saved value, as recorded by {@link MaterializerRegistry.save}. */
export interface ArtifactRef {
  materializer: string;
  contentHash: string;
  dataType: string;
}

export interface MaterializerRegistryOptions {
  /**
   * Where loaded `directory` artifacts are recreated (`<cacheDir>/<manifest hash>`), for example
   * `<store root>/materialized`. Trees there are shared by every load of the same artifact.
   */
  cacheDir: string;
}

/**
 * The materializers a pipeline can use, by name. Steps' outputs are saved and their inputs loaded
 * through it: an output that names a materializer uses that one, any other gets one picked from
 * its value ({@link MaterializerRegistry.pick}).
 *
 * @example
 * const registry = MaterializerRegistry.withBuiltins({ cacheDir: '.stackline/materialized' });
 * const saved = await registry.save({ accuracy: 0.97 }, { store });   // picks `json`
 * const value = await registry.load(saved, { store });                // { accuracy: 0.97 }
 * const model = await registry.save('out/model.onnx', { store }, 'file');
 */
export class MaterializerRegistry {
  readonly #byName = new Map<string, Materializer>();
  /** Most recently registered first: the order in which `pick` asks them. */
  readonly #pickOrder: Materializer[] = [];

  /**
   * A registry holding the built-ins. When picking, `binary` is asked first, then `stream`,
   * `string` and finally `json`; `file` and `directory` hold path strings, which cannot be told
   * from text, so they are only used when named.
   */
  static withBuiltins(options: MaterializerRegistryOptions): MaterializerRegistry {
    return new MaterializerRegistry()
      .register(jsonMaterializer)
      .register(stringMaterializer)
      .register(streamMaterializer)
      .register(binaryMaterializer)
      .register(fileMaterializer)
      .register(createDirectoryMaterializer(options));
  }

  /**
   * Adds a materializer. It takes precedence over those registered before it when picking.
   * @throws ConflictError if one with the same name is already registered.
   */
  register<T>(materializer: Materializer<T>): this {
    if (this.#byName.has(materializer.name)) {
      throw new ConflictError(
        `A materializer named "${materializer.name}" is already registered. Give yours another name.`,
        { context: { materializer: materializer.name } },
      );
    }
    this.#byName.set(materializer.name, materializer as Materializer);
    this.#pickOrder.unshift(materializer as Materializer);
    return this;
  }

  /** @throws ValidationError listing the registered names if there is none called `name`. */
  get<T = unknown>(name: string): Materializer<T> {
    const materializer = this.#byName.get(name);
    if (materializer === undefined) {
      throw new ValidationError(`Unknown materializer "${name}". Registered materializers: ${this.#known()}.`, {
        context: { materializer: name, known: this.names() },
      });
    }
    return materializer as Materializer<T>;
  }

  names(): string[] {
    return [...this.#byName.keys()];
  }

  /**
   * The materializer for a value whose output does not name one: the most recently registered
   * whose `canHandle` accepts it. With the built-ins: Buffer/Uint8Array → `binary`, Readable or
   * async iterable → `stream`, string → `string`, anything else JSON can represent → `json`.
   * @throws ValidationError if none can (a function, symbol, bigint, `undefined`, a circular
   *   structure, ...), saying to declare a materializer for the output.
   */
  pick(value: unknown): Materializer {
    const materializer = this.#pickOrder.find((candidate) => candidate.canHandle(value));
    if (materializer !== undefined) return materializer;
    let reason = `No registered materializer (${this.#known()}) can handle ${describeValue(value)}.`;
    try {
      canonicalJson(value);
    } catch (error) {
      if (error instanceof StacklineError) reason = `${error.message} No other registered materializer can handle it.`;
    }
    throw new ValidationError(
      `${reason} Declare a materializer for this output: register one for this kind of value ` +
        '(MaterializerRegistry.register) or name a built-in such as "binary" or "file".',
      { context: { valueType: describeValue(value) } },
    );
  }

  /** Saves `value` with the named materializer, or the one {@link pick} chooses. */
  async save(value: unknown, context: MaterializerContext, materializerName?: string): Promise<SavedArtifact> {
    const materializer = materializerName === undefined ? this.pick(value) : this.get(materializerName);
    const saved = await materializer.save(value, context);
    return mergeRecords<SavedArtifact>(saved, { materializer: materializer.name });
  }

  /** Loads a value saved by {@link save}, with the materializer that saved it. */
  async load(ref: ArtifactRef, context: MaterializerContext): Promise<unknown> {
    return this.get(ref.materializer).load(ref, context);
  }

  #known(): string {
    return this.names().join(', ') || 'none';
  }
}

/**
 * Any value JSON can represent, stored as canonical JSON (sorted keys), so the same value always
 * has the same content hash. `dataType` is `json:<object|array|number|string|boolean|null>`.
 * Loads return plain data: class instances come back as plain objects, `Date`s as ISO strings.
 */
export const jsonMaterializer: Materializer<unknown> = {
  name: 'json',
  canHandle(value) {
    try {
      canonicalJson(value);
      return true;
    } catch {
      return false;
    }
  },
  async save(value, { store }) {
    let text: string;
    try {
      text = canonicalJson(value);
    } catch (error) {
      if (!(error instanceof ValidationError)) throw error;
      throw new ValidationError(`${error.message} Save it with another materializer, or declare your own.`, {
        cause: error,
        context: error.context,
      });
    }
    return mergeRecords<MaterializedValue>(await store.put(text), { dataType: `json:${jsonKind(text)}` });
  },
  async load({ contentHash }, { store }) {
    return JSON.parse((await store.getBytes(contentHash)).toString('utf8'));
  },
};

/** Text, stored as UTF-8. */
export const stringMaterializer: Materializer<string> = {
  name: 'string',
  canHandle: (value) => typeof value === 'string',
  async save(value, { store }) {
    if (typeof value !== 'string') throw wrongValue('string', 'a string', value);
    return mergeRecords<MaterializedValue>(await store.put(value), { dataType: 'string' });
  },
  async load({ contentHash }, { store }) {
    return (await store.getBytes(contentHash)).toString('utf8');
  },
};

/** Bytes held in memory (Buffer or Uint8Array); loads return a Buffer. For large data use `file` or `stream`. */
export const binaryMaterializer: Materializer<Uint8Array> = {
  name: 'binary',
  canHandle: (value) => value instanceof Uint8Array,
  async save(value, { store }) {
    if (!(value instanceof Uint8Array)) throw wrongValue('binary', 'a Buffer or Uint8Array', value);
    return mergeRecords<MaterializedValue>(await store.put(value), { dataType: 'binary' });
  },
  async load({ contentHash }, { store }) {
    return store.getBytes(contentHash);
  },
};

/**
 * A local file, given by its path. Saving streams the file into the store. Loading returns a local
 * path holding the bytes — on a disk store the stored blob itself, shared with every other reader —
 * so it is read-only and steps must never modify it: copy it first if you need to.
 * Only used when named (a path cannot be told from other text).
 */
export const fileMaterializer: Materializer<string> = {
  name: 'file',
  canHandle: () => false,
  async save(path, { store }) {
    if (typeof path !== 'string') throw wrongValue('file', 'a local file path', path);
    const info = await statOrUndefined(path);
    if (!info?.isFile()) {
      throw new ValidationError(
        `The file materializer was given ${path}, which ${info ? 'is not a regular file' : 'does not exist'}. ` +
          'Return the path of the file the step wrote (use "directory" for a folder).',
        { context: { path } },
      );
    }
    return mergeRecords<MaterializedValue>(await store.putFile(path), { dataType: 'file' });
  },
  async load({ contentHash }, { store }) {
    return store.getFile(contentHash);
  },
};

/**
 * A stream of bytes (a Readable or any `AsyncIterable<Uint8Array>`), written straight into the
 * store without being held in memory; loads return a Readable. This is how large binaries that
 * are produced rather than already in a file avoid memory. A stream can be read only once.
 */
export const streamMaterializer: Materializer<Readable | AsyncIterable<Uint8Array>> = {
  name: 'stream',
  canHandle: (value) => value instanceof Readable || isAsyncIterable(value),
  async save(value, { store }) {
    if (!(value instanceof Readable || isAsyncIterable(value))) {
      throw wrongValue('stream', 'a Readable or an async iterable of Uint8Array', value);
    }
    return mergeRecords<MaterializedValue>(await store.put(value), { dataType: 'stream' });
  },
  async load({ contentHash }, { store }) {
    return store.get(contentHash);
  },
};

const contentHashSchema = z.string().regex(/^sha256:[0-9a-f]{64}$/);
const relativePathSchema = z
  .string()
  .refine(
    (path) =>
      path.length > 0 &&
      !path.startsWith('/') &&
      path.split('/').every((part) => part !== '' && part !== '.' && part !== '..'),
    { message: 'must be a relative path inside the directory' },
  );

/** The stored description of a `directory` artifact; its content hash is the artifact's. */
export const directoryManifestSchema = z.object({
  files: z.array(
    z.object({
      /** POSIX-style path relative to the directory. */
      path: relativePathSchema,
      contentHash: contentHashSchema,
      size: z.number().int().nonnegative(),
      /** Permission bits (`0o755`, ...). */
      mode: z.number().int().nonnegative(),
    }),
  ),
});
export type DirectoryManifest = z.infer<typeof directoryManifestSchema>;

/** Files stored or copied at once when saving or loading a directory. */
const DIRECTORY_CONCURRENCY = 8;
const WRITE_BITS = 0o222;

/**
 * A local directory, given by its path. Each regular file is stored as its own blob (so files
 * shared between versions are stored once), plus a manifest listing them (see
 * {@link DirectoryManifest}), whose hash is the artifact's. Symbolic links and special files are
 * refused; empty subdirectories are not kept.
 *
 * Loading recreates the tree once per manifest under `<cacheDir>/<manifest hex>` (built in a temp
 * directory, then renamed into place) and returns that path; later loads reuse it. Its files keep
 * their permission bits minus write permission: the tree is shared, and steps must not modify it.
 * Only used when named.
 */
export function createDirectoryMaterializer(options: MaterializerRegistryOptions): Materializer<string> {
  const { cacheDir } = options;
  return {
    name: 'directory',
    canHandle: () => false,
    async save(root, { store }) {
      if (typeof root !== 'string') throw wrongValue('directory', 'a local directory path', root);
      const info = await statOrUndefined(root);
      if (!info?.isDirectory()) {
        throw new ValidationError(
          `The directory materializer was given ${root}, which ${info ? 'is not a directory' : 'does not exist'}. ` +
            'Return the path of the directory the step wrote (use "file" for a single file).',
          { context: { path: root } },
        );
      }
      const paths = await listFiles(root);
      const files = await mapConcurrently(paths, DIRECTORY_CONCURRENCY, async (path) => {
        const absolute = join(root, ...path.split('/'));
        const { mode } = await stat(absolute);
        const { contentHash, size } = await store.putFile(absolute);
        return { path, contentHash, size, mode: mode & 0o777 };
      });
      const manifest: DirectoryManifest = { files };
      return mergeRecords<MaterializedValue>(await store.put(canonicalJson(manifest)), { dataType: 'directory' });
    },
    async load({ contentHash }, { store }) {
      const hex = contentHashSchema.safeParse(contentHash).success ? contentHash.slice('sha256:'.length) : undefined;
      if (hex === undefined) {
        throw new ValidationError(`Invalid content hash ${JSON.stringify(contentHash)} for a directory artifact.`, {
          context: { contentHash },
        });
      }
      const target = join(cacheDir, hex);
      if ((await statOrUndefined(target))?.isDirectory()) return target;

      const manifest = parseManifest(await store.getBytes(contentHash), contentHash);
      await mkdir(cacheDir, { recursive: true });
      const staging = await mkdtemp(join(cacheDir, `.tmp-${hex.slice(0, 12)}-`));
      try {
        await mapConcurrently(manifest.files, DIRECTORY_CONCURRENCY, async (file) => {
          const destination = join(staging, ...file.path.split('/'));
          await mkdir(dirname(destination), { recursive: true });
          // A reflink where the file system supports it, a plain copy elsewhere.
          await copyFile(await store.getFile(file.contentHash), destination, constants.COPYFILE_FICLONE);
          await chmod(destination, file.mode & ~WRITE_BITS);
        });
        await rename(staging, target);
      } catch (error) {
        await rm(staging, { recursive: true, force: true });
        // Another load of the same artifact finished first: its tree is identical.
        if ((await statOrUndefined(target))?.isDirectory()) return target;
        throw error;
      }
      return target;
    },
  };
}

function parseManifest(bytes: Buffer, contentHash: string): DirectoryManifest {
  let parsed: z.ZodSafeParseResult<DirectoryManifest>;
  try {
    parsed = directoryManifestSchema.safeParse(JSON.parse(bytes.toString('utf8')));
  } catch (error) {
    throw new ValidationError(`Artifact ${contentHash} is not a directory manifest: it is not JSON.`, {
      cause: error,
      context: { contentHash },
    });
  }
  if (!parsed.success) {
    throw new ValidationError(
      `Artifact ${contentHash} is not a valid directory manifest: ${z.prettifyError(parsed.error)}`,
      {
        cause: parsed.error,
        context: { contentHash },
      },
    );
  }
  return parsed.data;
}

/** Relative POSIX paths of the regular files under `root`, sorted so manifests are deterministic. */
async function listFiles(root: string, prefix = ''): Promise<string[]> {
  const files: string[] = [];
  for (const entry of await readdir(join(root, prefix), { withFileTypes: true })) {
    const path = prefix === '' ? entry.name : `${prefix}/${entry.name}`;
    if (entry.isDirectory()) {
      files.push(...(await listFiles(root, path)));
    } else if (entry.isFile()) {
      files.push(path);
    } else {
      throw new ValidationError(
        `Cannot store directory ${root}: ${path} is ${entry.isSymbolicLink() ? 'a symbolic link' : 'not a regular file'}. ` +
          'Directory artifacts hold regular files only; copy the target in, or remove it.',
        { context: { path: root, entry: path } },
      );
    }
  }
  return files.sort();
}

async function mapConcurrently<T, R>(items: readonly T[], limit: number, fn: (item: T) => Promise<R>): Promise<R[]> {
  const results = new Array<R>(items.length);
  let next = 0;
  const worker = async (): Promise<void> => {
    while (next < items.length) {
      const index = next++;
      results[index] = await fn(items[index] as T);
    }
  };
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, worker));
  return results;
}

async function statOrUndefined(path: string) {
  return stat(path).catch((error: unknown) => {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw error;
  });
}

function isAsyncIterable(value: unknown): value is AsyncIterable<Uint8Array> {
  return (
    typeof value === 'object' &&
    value !== null &&
    typeof (value as { [Symbol.asyncIterator]?: unknown })[Symbol.asyncIterator] === 'function'
  );
}

/** The JSON type of canonical JSON text, from its first character. */
function jsonKind(text: string): 'object' | 'array' | 'string' | 'boolean' | 'null' | 'number' {
  switch (text[0]) {
    case '{':
      return 'object';
    case '[':
      return 'array';
    case '"':
      return 'string';
    case 't':
    case 'f':
      return 'boolean';
    case 'n':
      return 'null';
    default:
      return 'number';
  }
}

function describeValue(value: unknown): string {
  if (value === null) return 'null';
  if (typeof value === 'object') return `an object of type ${value.constructor?.name ?? 'Object'}`;
  return `a value of type ${typeof value}`;
}

function wrongValue(materializer: string, expected: string, value: unknown): ValidationError {
  return new ValidationError(
    `The ${materializer} materializer expects ${expected}, but was given ${describeValue(value)}.`,
    { context: { materializer } },
  );
}
