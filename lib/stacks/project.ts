import { existsSync, mkdirSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { z } from 'zod';
import type { ArtifactStore } from '../artifacts/artifact-store.ts';
import { LocalArtifactStore } from '../artifacts/local-artifact-store.ts';
import type { MaterializerRegistry } from '../artifacts/materializers.ts';
import { createMaterializerRegistry } from '../artifacts/registry.ts';
import { StackConfigError, ValidationError } from '../errors.ts';
import type { MetadataStore } from '../metadata/metadata-store.ts';
import { SqliteMetadataStore } from '../metadata/sqlite/sqlite-metadata-store.ts';
import type { StackRecord } from '../metadata/types.ts';
import { reapAbandonedRuns } from '../runtime/reaper.ts';
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

/** What `StackRuntime.close()` releases: the AWS SDK clients a stack's stores were given. */
interface SdkClient {
  destroy(): void;
}

const ClientConfigSchema = z.object({ activeStack: z.string().default(DEFAULT_STACK_NAME) });

/** An opened stack: the stores a run on it uses. */
export interface StackRuntime {
  name: string;
  components: StackComponents;
  metadata: MetadataStore;
  artifacts: ArtifactStore;
  materializers: MaterializerRegistry;
  /** Pipelines whose steps may promote to production on this stack (`components.promoters`). */
  promoters?: readonly string[];
  /** Closes the stack's own stores and destroys the AWS SDK clients opened for them. */
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

  /**
   * The validated components of a registered stack.
   *
   * @throws NotFoundError when no stack has this name; StackConfigError when its configuration is invalid.
   */
  async stackComponents(name: string): Promise<StackComponents> {
    const record = await this.registry.stacks.get(name);
    const parsed = StackComponentsSchema.safeParse(record.components);
    if (!parsed.success) {
      throw new StackConfigError(
        `Stack "${name}" has an invalid configuration: ${formatZodIssues(parsed.error)}. Fix it with \`stackline stack register\`.`,
        { context: { stack: name } },
      );
    }
    return parsed.data;
  }

  /**
   * Opens the stores of a stack (the active one by default). AWS components get their own SDK
   * clients, created here and destroyed by the runtime's `close()`.
   */
  async openStack(name = this.activeStackName(), options: { reap?: boolean } = {}): Promise<StackRuntime> {
    const components = await this.stackComponents(name);
    const materializers = createMaterializerRegistry({ cacheDir: join(this.home, 'materialized') });
    const clients: SdkClient[] = [];
    const destroyClients = () => {
      for (const client of clients.splice(0)) client.destroy();
    };
    try {
      const artifacts = await this.openArtifactStore(name, components, clients);
      const metadata = await this.openMetadataStore(name, components, clients);
      if (options.reap !== false) {
        // Runs whose executor died (kill -9, a lost host) end here rather than stay `running`.
        await reapAbandonedRuns(metadata).catch(() => {
          // Never let reaping stop a stack from opening; `stackline runs reap` reports errors.
        });
      }
      return {
        name,
        components,
        metadata,
        artifacts,
        materializers,
        ...(components.promoters === undefined ? {} : { promoters: components.promoters }),
        close: async () => {
          try {
            if (metadata !== this.registry) await metadata.close();
          } finally {
            destroyClients();
          }
        },
      };
    } catch (error) {
      destroyClients();
      throw error;
    }
  }

  // The AWS branches load the SDK with import(): it takes about half a second to load, which commands
  // on local stacks should not pay.

  private async openArtifactStore(
    stack: string,
    components: StackComponents,
    clients: SdkClient[],
  ): Promise<ArtifactStore> {
    const config = components.artifactStore;
    if (config.type === 'local') return new LocalArtifactStore(resolve(this.home, config.path ?? 'artifacts'));
    const [{ createS3Client }, { S3ArtifactStore }] = await Promise.all([
      import('./aws-clients.ts'),
      import('../artifacts/s3-artifact-store.ts'),
    ]);
    const client = createS3Client(stack, config);
    clients.push(client);
    return new S3ArtifactStore({
      client,
      bucket: config.bucket,
      prefix: config.prefix,
      serverSideEncryption: config.serverSideEncryption,
      kmsKeyId: config.kmsKeyId,
      cacheDir: join(this.home, 'cache', 's3'),
    });
  }

  private async openMetadataStore(
    stack: string,
    components: StackComponents,
    clients: SdkClient[],
  ): Promise<MetadataStore> {
    const config = components.metadataStore;
    if (config.type === 'sqlite') {
      if (!config.path) return this.registry;
      return SqliteMetadataStore.open(resolve(this.home, config.path));
    }
    const [{ createDynamoDbClient }, { DynamoDbMetadataStore }, { tableNamesFor }] = await Promise.all([
      import('./aws-clients.ts'),
      import('../metadata/dynamodb/dynamodb-metadata-store.ts'),
      import('../metadata/dynamodb/table-definitions.ts'),
    ]);
    const client = createDynamoDbClient(stack, config);
    clients.push(client);
    return new DynamoDbMetadataStore({ client, tables: tableNamesFor(config.tablePrefix) });
  }

  async close(): Promise<void> {
    await this.registry.close();
  }
}
