import {
  BatchWriteItemCommand,
  CreateTableCommand,
  DynamoDBClient,
  GetItemCommand,
  QueryCommand,
  ScanCommand,
  TransactWriteItemsCommand,
} from '@aws-sdk/client-dynamodb';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { awsTestClientConfig, type MotoServer, startMoto } from '../support/moto.ts';

// The moto extension's DynamoDB cost patches (dynamodb_transact_undo, dynamodb_query_scope) must
// keep moto's answers: a cancelled transaction changes nothing, queries return the same items in
// the same order and pages. Their cost (no longer growing with the table) is what
// `npm run bench -- --only aws-requests` relies on; timings are not asserted here.

let moto: MotoServer;
let dynamodb: DynamoDBClient;
const TableName = 'stackline-cost-patches';

beforeAll(async () => {
  moto = await startMoto();
  dynamodb = new DynamoDBClient({ ...awsTestClientConfig(moto.endpoint), maxAttempts: 1 });
  await dynamodb.send(
    new CreateTableCommand({
      TableName,
      BillingMode: 'PAY_PER_REQUEST',
      AttributeDefinitions: [
        { AttributeName: 'pk', AttributeType: 'S' },
        { AttributeName: 'sk', AttributeType: 'S' },
        { AttributeName: 'gpk', AttributeType: 'S' },
        { AttributeName: 'gsk', AttributeType: 'S' },
      ],
      KeySchema: [
        { AttributeName: 'pk', KeyType: 'HASH' },
        { AttributeName: 'sk', KeyType: 'RANGE' },
      ],
      GlobalSecondaryIndexes: [
        {
          IndexName: 'byGroup',
          KeySchema: [
            { AttributeName: 'gpk', KeyType: 'HASH' },
            { AttributeName: 'gsk', KeyType: 'RANGE' },
          ],
          Projection: { ProjectionType: 'ALL' },
        },
      ],
    }),
  );
  // Three partitions of 30 items, written out of order; every third item in group G.
  const items = Array.from({ length: 90 }, (_, i) => (i * 37) % 90).map((n) => ({
    pk: { S: `P${n % 3}` },
    sk: { S: `S${String(n).padStart(3, '0')}` },
    ...(n % 3 === 0 ? { gpk: { S: 'G' }, gsk: { S: `K${String(90 - n).padStart(3, '0')}` } } : {}),
    n: { N: String(n) },
  }));
  for (let i = 0; i < items.length; i += 25) {
    await dynamodb.send(
      new BatchWriteItemCommand({
        RequestItems: { [TableName]: items.slice(i, i + 25).map((Item) => ({ PutRequest: { Item } })) },
      }),
    );
  }
}, 60_000);

afterAll(async () => {
  dynamodb?.destroy();
  await moto?.stop();
});

const key = (pk: string, sk: string) => ({ pk: { S: pk }, sk: { S: sk } });
async function n(pk: string, sk: string): Promise<string | undefined> {
  return (await dynamodb.send(new GetItemCommand({ TableName, Key: key(pk, sk), ConsistentRead: true }))).Item?.n?.N;
}

describe('moto_ext DynamoDB cost patches', () => {
  it('a cancelled transaction leaves every item it named as it was, and a successful one applies', async () => {
    const transaction = (condition: string) =>
      new TransactWriteItemsCommand({
        TransactItems: [
          { Put: { TableName, Item: { ...key('P0', 'NEW'), n: { N: '1' } } } },
          {
            Update: {
              TableName,
              Key: key('P1', 'S001'),
              UpdateExpression: 'SET n = :n',
              ExpressionAttributeValues: { ':n': { N: '-1' } },
            },
          },
          { Delete: { TableName, Key: key('P2', 'S002') } },
          {
            ConditionCheck: {
              TableName,
              Key: key('P0', 'S000'),
              ConditionExpression: condition,
              ExpressionAttributeValues: { ':n': { N: '0' } },
            },
          },
        ],
      });
    await expect(dynamodb.send(transaction('n = :n AND attribute_not_exists(pk)'))).rejects.toMatchObject({
      name: 'TransactionCanceledException',
    });
    expect(await n('P0', 'NEW')).toBeUndefined();
    expect(await n('P1', 'S001')).toBe('1');
    expect(await n('P2', 'S002')).toBe('2');
    expect((await dynamodb.send(new ScanCommand({ TableName, Select: 'COUNT' }))).Count).toBe(90);

    await dynamodb.send(transaction('n = :n'));
    expect(await n('P0', 'NEW')).toBe('1');
    expect(await n('P1', 'S001')).toBe('-1');
    expect(await n('P2', 'S002')).toBeUndefined();
  });

  it('a base-table query returns its partition only, in sort-key order, page by page', async () => {
    const seen: string[] = [];
    let ExclusiveStartKey: Record<string, never> | undefined;
    do {
      const page = await dynamodb.send(
        new QueryCommand({
          TableName,
          KeyConditionExpression: 'pk = :pk AND begins_with(sk, :s)',
          ExpressionAttributeValues: { ':pk': { S: 'P1' }, ':s': { S: 'S' } },
          ScanIndexForward: false,
          Limit: 7,
          ...(ExclusiveStartKey ? { ExclusiveStartKey } : {}),
        }),
      );
      seen.push(...(page.Items ?? []).map((item) => item.sk!.S!));
      ExclusiveStartKey = page.LastEvaluatedKey as typeof ExclusiveStartKey;
    } while (ExclusiveStartKey);
    const expected = Array.from({ length: 30 }, (_, i) => `S${String(3 * i + 1).padStart(3, '0')}`).reverse();
    expect(seen).toEqual(expected);
  });

  it('an index query finds its key across partitions, sorted by the index sort key', async () => {
    const page = await dynamodb.send(
      new QueryCommand({
        TableName,
        IndexName: 'byGroup',
        KeyConditionExpression: 'gpk = :g AND gsk < :k',
        ExpressionAttributeValues: { ':g': { S: 'G' }, ':k': { S: 'K030' } },
      }),
    );
    // gsk = K(90 - n) for n = 0, 3, …, 87: below K030 means n > 60.
    expect((page.Items ?? []).map((item) => item.n!.N)).toEqual(['87', '84', '81', '78', '75', '72', '69', '66', '63']);
  });
});
