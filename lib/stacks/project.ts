import { existsSync, mkdirSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { z } from 'zod';
import type { ArtifactStore } from '../artifacts/artifact-store.ts';
import { registeredMaterializers } from '../artifacts/custom-materializers.ts';
import { LocalArtifactStore } from '../artifacts/local-artifact-store.ts';
import { MaterializerRegistry } from '../artifacts/materializers.ts';
import { StackConfigError, ValidationError } from '../errors.ts';
import type { MetadataStore } from '../metadata/metadata-store.ts';
import { SqliteMetadataStore } from '../metadata/sqlite/sqlite-metadata-store.ts';
import type { StackRecord } from '../metadata/types.ts';
import { formatZodIssues } from '../util/zod-format.ts';
import {
  DEFAULT_STACK_NAME,
  defaultStackComponents,
  type StackComponents,
  StackComponentsSchema,
} from './stack-config.ts';

/**
 * Finds the project's state directory: `$STACKLINE_HOME`, else the nearest `.stackline/` in this
 * directory or a parent, else `./.stackline` (created on first use).
 */
export function resolveHome(cwd = process.cwd(), env: NodeJS.ProcessEnv = process.env): string {
  if (env.STACKLINE_HOME) return resolve(cwd, env.STACKLINE_HOME);
  let dir = resolve(cwd);
  for (;;) {
    if (existsSync(join(dir, '.stackline'))) return join(dir, '.stackline');
    const parent = dirname(dir);
    if (parent === dir) return join(resolve(cwd), '.stackline');
    dir = parent;
  }
}

const ClientConfigSchema = z.object({ activeStack: z.string().default(DEFAULT_STACK_NAME) });

/** An opened stack: the stores a run on it uses. */
export interface StackRuntime {
  name: string;
  components: StackComponents;
  metadata: MetadataStore;
  artifacts: ArtifactStore;
  materializers: MaterializerRegistry;
  close(): Promise<void>;
}

/**
 * A project's local state: the registry database (stacks, and everything the local default stack
 * records) and the client settings (active stack) under the home directory.
 */
export class Project {
  readonly registry: SqliteMetadataStore;

  private constructor(readonly home: string) {
    mkdirSync(home, { recursive: true });
    this.registry = SqliteMetadataStore.open(join(home, 'metadata.db'));
  }

  /** Opens (creating if needed) the project at `home` and makes sure the `default` stack exists. */
  static async open(home = resolveHome()): Promise<Project> {
    const project = new Project(home);
    if (!(await project.registry.stacks.find(DEFAULT_STACK_NAME))) {
      await project.registry.stacks.put({
        name: DEFAULT_STACK_NAME,
        description: 'Local orchestrator, artifacts on disk, SQLite metadata',
        components: defaultStackComponents() as StackRecord['components'],
        tags: ['environment:local'],
      });
    }
    return project;
  }

  private get configPath() {
    return join(this.home, 'config.json');
  }

  activeStackName(): string {
    if (!existsSync(this.configPath)) return DEFAULT_STACK_NAME;
    const parsed = ClientConfigSchema.safeParse(JSON.parse(readFileSync(this.configPath, 'utf8')));
    if (!parsed.success) throw new ValidationError(`${this.configPath} is invalid: ${formatZodIssues(parsed.error)}`);
    return parsed.data.activeStack;
  }

  async setActiveStack(name: string): Promise<void> {
    await this.registry.stacks.get(name);
    const tmp = `${this.configPath}.tmp`;
    writeFileSync(tmp, `${JSON.stringify({ activeStack: name }, null, 2)}\n`);
    renameSync(tmp, this.configPath);
  }

  /** Opens the stores of a stack (the active one by default). */
  async openStack(name = this.activeStackName()): Promise<StackRuntime> {
    const record = await this.registry.stacks.get(name);
    const parsed = StackComponentsSchema.safeParse(record.components);
    if (!parsed.success) {
      throw new StackConfigError(
        `Stack "${name}" has an invalid configuration: ${formatZodIssues(parsed.error)}. Fix it with \`stackline stack register\`.`,
      );
    }
    const components = parsed.data;
    const materializers = MaterializerRegistry.withBuiltins({ cacheDir: join(this.home, 'materialized') });
    for (const custom of registeredMaterializers()) materializers.register(custom);
    const artifacts = this.openArtifactStore(name, components);
    const metadata = this.openMetadataStore(name, components);
    return {
      name,
      components,
      metadata,
      artifacts,
      materializers,
      close: async () => {
        if (metadata !== this.registry) await metadata.close();
      },
    };
  }

  private openArtifactStore(stack: string, components: StackComponents): ArtifactStore {
    const config = components.artifactStore;
    if (config.type === 'local') return new LocalArtifactStore(resolve(this.home, config.path ?? 'artifacts'));
    throw new StackConfigError(
      `Stack "${stack}": artifact store type "${config.type}" is not available in this build.`,
    );
  }

  private openMetadataStore(stack: string, components: StackComponents): MetadataStore {
    const config = components.metadataStore;
    if (config.type === 'sqlite') {
      if (!config.path) return this.registry;
      return SqliteMetadataStore.open(resolve(this.home, config.path));
    }
    throw new StackConfigError(
      `Stack "${stack}": metadata store type "${config.type}" is not available in this build.`,
    );
  }

  async close(): Promise<void> {
    await this.registry.close();
  }
}
