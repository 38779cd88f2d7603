import {
  CreateTableCommand,
  type CreateTableCommandInput,
  type DynamoDBClient,
  type GlobalSecondaryIndex,
  waitUntilTableExists,
} from '@aws-sdk/client-dynamodb';

/** Names of the four tables a {@link DynamoDbMetadataStore} uses (injected: CDK decides them). */
export interface DynamoDbTableNames {
  stacks: string;
  runs: string;
  artifacts: string;
  models: string;
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
    GlobalSecondaryIndexes: indexes.map(gsi),
  };
}

/**
 * The CreateTable input of each table, as plain data: tests create tables from it and the CDK stack
 * renders the same key schema and indexes, so both always agree.
 *
 * @example
 * const defs = tableDefinitions({ stacks: 'sl-stacks', runs: 'sl-runs', artifacts: 'sl-artifacts', models: 'sl-models' });
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
  };
}

/** Creates the four tables and waits until they are active. For tests and local emulators. */
export async function createTables(client: DynamoDBClient, tables: DynamoDbTableNames): Promise<void> {
  await Promise.all(
    Object.values(tableDefinitions(tables)).map(async (definition) => {
      await client.send(new CreateTableCommand(definition));
      await waitUntilTableExists({ client, maxWaitTime: 60, minDelay: 1 }, { TableName: definition.TableName! });
    }),
  );
}
