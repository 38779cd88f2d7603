import type { DynamoDBClient } from '@aws-sdk/client-dynamodb';
import { DynamoDBDocumentClient, GetCommand, UpdateCommand } from '@aws-sdk/lib-dynamodb';
import { nowIso } from '../../util/ids.ts';
import type { MetadataStore } from '../metadata-store.ts';
import { storeErrors } from '../store-errors.ts';
import type { Metadata, MetadataTarget } from '../types.ts';
import { DynamoDbArtifactRepository } from './dynamodb-artifact-repository.ts';
import { DynamoDbModelRepository } from './dynamodb-model-repository.ts';
import { DynamoDbRunRepository } from './dynamodb-run-repository.ts';
import { DynamoDbStackRepository } from './dynamodb-stack-repository.ts';
import { keys } from './keys.ts';
import { type Db, Expression, isConditionalCheckFailed, type Key, KeyedQueue, translateError } from './support.ts';
import type { DynamoDbTableNames } from './table-definitions.ts';

export interface DynamoDbMetadataStoreOptions {
  /** The caller owns the client (region, credentials, endpoint) and destroys it. */
  client: DynamoDBClient;
  /** Table names, as created by the CDK stack from `tableDefinitions` (or `createTables` in tests). */
  tables: DynamoDbTableNames;
}

/**
 * The {@link MetadataStore} of AWS stacks, on four DynamoDB tables (stacks, runs, artifacts, models).
 * Version numbers, step completion, stage promotions and alias moves are TransactWriteItems with
 * conditions on what was read, retried with jitter when a concurrent writer got there first; no user
 * path scans a table. The layout and the access pattern behind each key and index are in
 * `docs/dynamodb-design.md`.
 *
 * @example
 * const store = new DynamoDbMetadataStore({
 *   client: new DynamoDBClient({ region: 'eu-west-1' }),
 *   tables: tableNamesFor('sl'),
 * });
 * const version = await store.models.createVersion('churn', { name: '2026-q4-baseline' });
 * await store.models.setStage('churn', version.number, 'production', { actor: 'ci', force: true });
 */
export class DynamoDbMetadataStore implements MetadataStore {
  readonly kind = 'dynamodb';
  readonly stacks: DynamoDbStackRepository;
  readonly runs: DynamoDbRunRepository;
  readonly artifacts: DynamoDbArtifactRepository;
  readonly models: DynamoDbModelRepository;
  readonly #db: Db;

  constructor(options: DynamoDbMetadataStoreOptions) {
    const doc = DynamoDBDocumentClient.from(options.client, {
      marshallOptions: { removeUndefinedValues: true },
    });
    this.#db = { doc, tables: options.tables, queue: new KeyedQueue() };
    this.stacks = new DynamoDbStackRepository(this.#db);
    this.runs = new DynamoDbRunRepository(this.#db);
    this.artifacts = new DynamoDbArtifactRepository(this.#db);
    this.models = new DynamoDbModelRepository(this.#db);
  }

  /** Merges `values` key by key (`SET metadata.#key = :value`), so concurrent merges do not lose keys. */
  async logMetadata(target: MetadataTarget, values: Metadata): Promise<void> {
    const { table, key, label, id, touch } = await this.#locate(target);
    // The run repository's remembered copy would miss these keys when it completes the step run.
    if (target.kind === 'step_run') this.runs.forgetStep(target.id);
    const notFound = () => storeErrors.targetNotFound(label, id, target);
    if (key === undefined) throw notFound();
    const e = new Expression();
    for (const [name, value] of Object.entries(values)) e.set(['metadata', name], value);
    if (touch) e.set(['updatedAt'], nowIso());
    e.condition('attribute_exists(pk)');
    const built = e.build();
    try {
      if (built.UpdateExpression === undefined) {
        const output = await this.#db.doc.send(new GetCommand({ TableName: table, Key: key, ConsistentRead: true }));
        if (output.Item === undefined) throw notFound();
        return;
      }
      await this.#db.doc.send(new UpdateCommand({ TableName: table, Key: key, ...built }));
    } catch (error) {
      if (isConditionalCheckFailed(error)) throw notFound();
      throw translateError(error, `Logging metadata on ${label.toLowerCase()} "${id}"`);
    }
  }

  /** Nothing to release: the caller owns the DynamoDB client. */
  async close(): Promise<void> {}

  /** The table and key of a metadata target; ids of items under another partition go through their pointer. */
  async #locate(
    target: MetadataTarget,
  ): Promise<{ table: string; key: Key | undefined; label: string; id: string; touch: boolean }> {
    const { tables } = this.#db;
    const pointer = async (table: string, pointerKey: Key) =>
      (await this.#db.doc.send(new GetCommand({ TableName: table, Key: pointerKey, ConsistentRead: true }))).Item;
    switch (target.kind) {
      case 'run':
        return { table: tables.runs, key: keys.run(target.id), label: 'Run', id: target.id, touch: false };
      case 'step_run': {
        const found = await pointer(tables.runs, keys.stepPointer(target.id));
        const key = found && keys.step(found.runId, target.id);
        return { table: tables.runs, key, label: 'Step run', id: target.id, touch: false };
      }
      case 'artifact_version': {
        const found = await pointer(tables.artifacts, keys.artifactVersionPointer(target.id));
        const key = found && keys.versionOf(found);
        return { table: tables.artifacts, key, label: 'Artifact version', id: target.id, touch: false };
      }
      case 'model_version': {
        const found = await pointer(tables.models, keys.modelVersionPointer(target.id));
        const key = found && keys.modelVersion(found.model, found.number);
        return { table: tables.models, key, label: 'Model version', id: target.id, touch: true };
      }
      case 'model':
        return { table: tables.models, key: keys.model(target.name), label: 'Model', id: target.name, touch: true };
    }
  }
}
