import { DeleteCommand, GetCommand, UpdateCommand } from '@aws-sdk/lib-dynamodb';
import { nowIso } from '../../util/ids.ts';
import type { StackRepository } from '../metadata-store.ts';
import { storeErrors } from '../store-errors.ts';
import type { Page, StackRecord, TagFilter } from '../types.ts';
import {
  type Db,
  Expression,
  isConditionalCheckFailed,
  listByName,
  recordOf,
  translateError,
  uniqueTags,
} from './support.ts';
import { INDEXES } from './table-definitions.ts';

/** Stacks: one item per stack, `pk = STACK#<name>`; listed by name through the `byName` index. */
export class DynamoDbStackRepository implements StackRepository {
  constructor(private readonly db: Db) {}

  async put(stack: Omit<StackRecord, 'createdAt' | 'updatedAt'>): Promise<StackRecord> {
    const now = nowIso();
    const e = new Expression()
      .set(['name'], stack.name)
      .set(['components'], stack.components)
      .set(['tags'], uniqueTags(stack.tags))
      .setOrRemove(['description'], stack.description)
      .set(['updatedAt'], now)
      // A replaced stack keeps the time it was first created.
      .setIfNotExists(['createdAt'], now)
      .set(['byNamePk'], 'STACK')
      .set(['byNameSk'], stack.name);
    try {
      const output = await this.db.doc.send(
        new UpdateCommand({
          TableName: this.db.tables.stacks,
          Key: stackKey(stack.name),
          ...e.build(),
          ReturnValues: 'ALL_NEW',
        }),
      );
      return recordOf<StackRecord>(output.Attributes!);
    } catch (error) {
      throw translateError(error, `Saving stack "${stack.name}"`);
    }
  }

  async get(name: string): Promise<StackRecord> {
    const stack = await this.find(name);
    if (stack === undefined) throw storeErrors.stackNotFound(name);
    return stack;
  }

  async find(name: string): Promise<StackRecord | undefined> {
    try {
      const output = await this.db.doc.send(
        new GetCommand({ TableName: this.db.tables.stacks, Key: stackKey(name), ConsistentRead: true }),
      );
      return output.Item === undefined ? undefined : recordOf<StackRecord>(output.Item);
    } catch (error) {
      throw translateError(error, `Reading stack "${name}"`);
    }
  }

  async list(filter: TagFilter = {}): Promise<Page<StackRecord>> {
    return listByName<StackRecord>(
      this.db,
      { TableName: this.db.tables.stacks, IndexName: INDEXES.stacks.byName },
      'STACK',
      filter,
    );
  }

  async delete(name: string): Promise<void> {
    try {
      await this.db.doc.send(
        new DeleteCommand({
          TableName: this.db.tables.stacks,
          Key: stackKey(name),
          ConditionExpression: 'attribute_exists(pk)',
        }),
      );
    } catch (error) {
      if (isConditionalCheckFailed(error)) {
        throw storeErrors.stackNotFound(name, { cause: error });
      }
      throw translateError(error, `Deleting stack "${name}"`);
    }
  }
}

function stackKey(name: string) {
  return { pk: `STACK#${name}`, sk: 'STACK' };
}
