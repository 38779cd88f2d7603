import {
  CreateTableCommand,
  type CreateTableCommandInput,
  type DynamoDBClient,
  type GlobalSecondaryIndex,
  waitUntilTableExists,
} from '@aws-sdk/client-dynamodb';

/** Names of the five tables a {@link DynamoDbMetadataStore} uses (injected: CDK decides them). */
export interface DynamoDbTableNames {
  stacks: string;
  runs: string;
  artifacts: string;
  models: string;
  /**
   * Stage holders and the stage/alias history of every model: a table of its own so IAM can give the
   * step runner read-only access to it (the audit trail is written only by the control plane).
   */
  stages: string;
}

/**
 * The table names of a stack's metadata store: `<tablePrefix>-stacks`, `-runs`, `-artifacts`,
 * `-models` and `-stages`. The one place this naming lives: `openStack`, `stackline stack provision` and the CDK
 * stack all derive the names from the stack's `tablePrefix` through it.
 *
 * @example
 * tableNamesFor('stackline-prod'); // { stacks: 'stackline-prod-stacks', runs: 'stackline-prod-runs', ... }
 */
export function tableNamesFor(tablePrefix: string): DynamoDbTableNames {
  return {
    stacks: `${tablePrefix}-stacks`,
    runs: `${tablePrefix}-runs`,
    artifacts: `${tablePrefix}-artifacts`,
    models: `${tablePrefix}-models`,
    stages: `${tablePrefix}-stages`,
  };
}

/**
 * Global secondary indexes, by table. Every table has a string partition key `pk` and sort key `sk`;
 * each index has its own `<index>Pk` / `<index>Sk` string attributes, written only on the items it
 * serves (sparse). See `docs/dynamodb-design.md` for the access pattern each one answers.
 */
export const INDEXES = {
  stacks: { byName: 'byName' },
  runs: { byStart: 'byStart', byPipeline: 'byPipeline', byStatus: 'byStatus', byCacheKey: 'byCacheKey' },
  artifacts: { byName: 'byName' },
  models: { byName: 'byName' },
  stages: {},
} as const;

function gsi(name: string): GlobalSecondaryIndex {
  return {
    IndexName: name,
    KeySchema: [
      { AttributeName: `${name}Pk`, KeyType: 'HASH' },
      { AttributeName: `${name}Sk`, KeyType: 'RANGE' },
    ],
    Projection: { ProjectionType: 'ALL' },
  };
}

function table(name: string, indexes: readonly string[]): CreateTableCommandInput {
  return {
    TableName: name,
    BillingMode: 'PAY_PER_REQUEST',
    KeySchema: [
      { AttributeName: 'pk', KeyType: 'HASH' },
      { AttributeName: 'sk', KeyType: 'RANGE' },
    ],
    AttributeDefinitions: [
      { AttributeName: 'pk', AttributeType: 'S' },
      { AttributeName: 'sk', AttributeType: 'S' },
      ...indexes.flatMap((index) => [
        { AttributeName: `${index}Pk`, AttributeType: 'S' as const },
        { AttributeName: `${index}Sk`, AttributeType: 'S' as const },
      ]),
    ],
    // CreateTable refuses an empty index list: a table without indexes has none.
    ...(indexes.length > 0 && { GlobalSecondaryIndexes: indexes.map(gsi) }),
  };
}

/**
 * The CreateTable input of each table, as plain data: tests create tables from it and the CDK stack
 * renders the same key schema and indexes, so both always agree.
 *
 * @example
 * const defs = tableDefinitions(tableNamesFor('sl'));
 * defs.runs.GlobalSecondaryIndexes?.map((index) => index.IndexName); // ['byStart', 'byPipeline', ...]
 */
export function tableDefinitions(
  tables: DynamoDbTableNames,
): Record<keyof DynamoDbTableNames, CreateTableCommandInput> {
  return {
    stacks: table(tables.stacks, Object.values(INDEXES.stacks)),
    runs: table(tables.runs, Object.values(INDEXES.runs)),
    artifacts: table(tables.artifacts, Object.values(INDEXES.artifacts)),
    models: table(tables.models, Object.values(INDEXES.models)),
    stages: table(tables.stages, Object.values(INDEXES.stages)),
  };
}

/**
 * Creates the five tables and waits until they are active. For tests, local emulators and dev
 * accounts (`stackline stack provision`); production tables come from the CDK stack.
 * With `ifNotExists`, a table that already exists is left as it is (and waited for), so calling it
 * again is harmless; without it, an existing table fails the call.
 *
 * @returns the names of the tables it created and of those that already existed.
 */
export async function createTables(
  client: DynamoDBClient,
  tables: DynamoDbTableNames,
  options: { ifNotExists?: boolean } = {},
): Promise<{ created: string[]; existing: string[] }> {
  const created: string[] = [];
  const existing: string[] = [];
  await Promise.all(
    Object.values(tableDefinitions(tables)).map(async (definition) => {
      const name = definition.TableName!;
      try {
        await client.send(new CreateTableCommand(definition));
        created.push(name);
      } catch (error) {
        if (!(options.ifNotExists && (error as { name?: string }).name === 'ResourceInUseException')) throw error;
        existing.push(name);
      }
      await waitUntilTableExists({ client, maxWaitTime: 60, minDelay: 1 }, { TableName: name });
    }),
  );
  return { created: created.sort(), existing: existing.sort() };
}
