import { storeErrors } from '../store-errors.ts';
/**
 * Plumbing shared by the DynamoDB repositories: expression building, pagination with opaque
 * cursors, optimistic transactions with retries, and SDK error translation.
 */

import {
  BatchGetCommand,
  type BatchGetCommandOutput,
  type DynamoDBDocumentClient,
  type NativeAttributeValue,
  QueryCommand,
  type QueryCommandInput,
  TransactWriteCommand,
  type TransactWriteCommandInput,
} from '@aws-sdk/lib-dynamodb';

import { ConflictError, StackConfigError, StacklineError, ValidationError } from '../../errors.ts';
import { pageLimit, uniqueTags } from '../store-rules.ts';
import type { Page, PageRequest, StepRun } from '../types.ts';
import type { DynamoDbTableNames } from './table-definitions.ts';

export type Item = Record<string, NativeAttributeValue>;
export type Key = { pk: string; sk: string };
export type TransactItem = NonNullable<TransactWriteCommandInput['TransactItems']>[number];

/** What every repository gets: the document client, the table names and the store's local queue. */
export interface Db {
  doc: DynamoDBDocumentClient;
  tables: DynamoDbTableNames;
  queue: KeyedQueue;
}

/**
 * Runs tasks one at a time per key, within this process. Writers that allocate from the same counter
 * (versions of one artifact name, of one model; a model's stage history) would otherwise mostly
 * cancel each other's transactions and retry; queued locally, calls from one store instance take
 * turns instead, and the conditional transactions still arbitrate between processes. Multi-key
 * tasks take their keys in sorted order, so two tasks cannot wait for each other.
 */
export class KeyedQueue {
  readonly #tails = new Map<string, Promise<void>>();

  run<T>(keys: readonly string[], task: () => Promise<T>): Promise<T> {
    const sorted = [...new Set(keys)].sort();
    const acquire = (index: number): Promise<T> =>
      index === sorted.length ? task() : this.#runOne(sorted[index]!, () => acquire(index + 1));
    return acquire(0);
  }

  async #runOne<T>(key: string, task: () => Promise<T>): Promise<T> {
    const previous = this.#tails.get(key) ?? Promise.resolve();
    let release!: () => void;
    const done = new Promise<void>((resolve) => {
      release = resolve;
    });
    const tail = previous.then(() => done);
    this.#tails.set(key, tail);
    try {
      await previous;
      return await task();
    } finally {
      release();
      if (this.#tails.get(key) === tail) this.#tails.delete(key);
    }
  }
}

/** TransactWriteItems accepts at most 100 actions. */
export const MAX_TRANSACTION_ITEMS = 100;

// ---------- Items ----------

/** Attributes that are storage detail, not part of a record: keys, index keys, revision, sets. */
const INTERNAL_ATTRIBUTE = /^(pk|sk|rev|historySeq|tagSet|aliasSet|[a-zA-Z]+(Pk|Sk))$/;

/** The record stored in an item: the item minus keys, index keys and internal attributes. */
export function recordOf<T>(item: Item): T {
  const record: Item = {};
  for (const [name, value] of Object.entries(item)) {
    if (!INTERNAL_ATTRIBUTE.test(name)) record[name] = value;
  }
  return record as T;
}

/** Zero-padded so that version numbers sort as strings in sort keys. */
export function padNumber(n: number): string {
  return String(n).padStart(10, '0');
}

/** A string set for `ADD`, or undefined for none (DynamoDB has no empty sets). */
export function stringSet(values: readonly string[]): Set<string> | undefined {
  return values.length === 0 ? undefined : new Set(values);
}

/** Drops properties whose value is undefined, so returned records match what a read returns. */
export function withoutUndefined<T extends object>(record: T): T {
  return Object.fromEntries(Object.entries(record).filter(([, value]) => value !== undefined)) as T;
}

/** Step runs by start time, then id (as every store lists them). */
export function sortSteps(steps: StepRun[]): StepRun[] {
  return steps.sort((a, b) => (a.startedAt === b.startedAt ? compare(a.id, b.id) : compare(a.startedAt, b.startedAt)));
}

function compare(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}

// ---------- Expressions ----------

/**
 * Builds update and condition expressions with generated placeholders, so attribute names that are
 * reserved words (`status`, `name`) or contain odd characters (metadata keys) are always safe.
 *
 * @example
 * const e = new Expression();
 * e.set(['status'], 'completed').condition(`${e.path('status')} = ${e.value('running')}`);
 * await doc.send(new UpdateCommand({ TableName, Key, ...e.build() }));
 */
export class Expression {
  readonly #names: Record<string, string> = {};
  readonly #nameIds = new Map<string, string>();
  readonly #values: Record<string, NativeAttributeValue> = {};
  readonly #sets: string[] = [];
  readonly #removes: string[] = [];
  readonly #adds: string[] = [];
  readonly #deletes: string[] = [];
  readonly #conditions: string[] = [];

  name(segment: string): string {
    let id = this.#nameIds.get(segment);
    if (id === undefined) {
      id = `#n${this.#nameIds.size}`;
      this.#nameIds.set(segment, id);
      this.#names[id] = segment;
    }
    return id;
  }

  path(...segments: string[]): string {
    return segments.map((segment) => this.name(segment)).join('.');
  }

  value(value: NativeAttributeValue): string {
    const id = `:v${Object.keys(this.#values).length}`;
    this.#values[id] = value;
    return id;
  }

  set(path: string[], value: NativeAttributeValue): this {
    this.#sets.push(`${this.path(...path)} = ${this.value(value)}`);
    return this;
  }

  /** Sets `path` unless `value` is undefined, in which case removes it. */
  setOrRemove(path: string[], value: NativeAttributeValue | undefined): this {
    return value === undefined ? this.remove(path) : this.set(path, value);
  }

  setIfNotExists(path: string[], value: NativeAttributeValue): this {
    const p = this.path(...path);
    this.#sets.push(`${p} = if_not_exists(${p}, ${this.value(value)})`);
    return this;
  }

  remove(path: string[]): this {
    this.#removes.push(this.path(...path));
    return this;
  }

  /** `ADD` a number (atomic increment) or the members of a set; an undefined set adds nothing. */
  add(path: string[], value: number | Set<string> | undefined): this {
    if (value !== undefined) this.#adds.push(`${this.path(...path)} ${this.value(value)}`);
    return this;
  }

  deleteFromSet(path: string[], value: Set<string>): this {
    this.#deletes.push(`${this.path(...path)} ${this.value(value)}`);
    return this;
  }

  condition(expression: string): this {
    this.#conditions.push(`(${expression})`);
    return this;
  }

  build(): {
    UpdateExpression?: string;
    ConditionExpression?: string;
    ExpressionAttributeNames?: Record<string, string>;
    ExpressionAttributeValues?: Record<string, NativeAttributeValue>;
  } {
    const clauses = [
      this.#sets.length > 0 ? `SET ${this.#sets.join(', ')}` : '',
      this.#removes.length > 0 ? `REMOVE ${this.#removes.join(', ')}` : '',
      this.#adds.length > 0 ? `ADD ${this.#adds.join(', ')}` : '',
      this.#deletes.length > 0 ? `DELETE ${this.#deletes.join(', ')}` : '',
    ].filter(Boolean);
    return {
      ...(clauses.length > 0 && { UpdateExpression: clauses.join(' ') }),
      ...(this.#conditions.length > 0 && { ConditionExpression: this.#conditions.join(' AND ') }),
      ...(this.#nameIds.size > 0 && { ExpressionAttributeNames: this.#names }),
      ...(Object.keys(this.#values).length > 0 && { ExpressionAttributeValues: this.#values }),
    };
  }
}

/** An `Update` transaction item from an expression that has at least one update clause. */
export function updateAction(TableName: string, Key: Key, expression: Expression): TransactItem {
  const built = expression.build();
  return { Update: { TableName, Key, ...built, UpdateExpression: built.UpdateExpression! } };
}

// ---------- Pagination ----------

/** A cursor is the DynamoDB key of the last item returned, as base64url JSON: opaque to callers. */
function encodeCursor(key: Item): string {
  return Buffer.from(JSON.stringify(key)).toString('base64url');
}

function decodeCursor(cursor: string, keyAttributes: readonly string[]): Item {
  let key: unknown;
  try {
    key = JSON.parse(Buffer.from(cursor, 'base64url').toString('utf8'));
  } catch {
    key = undefined;
  }
  const valid =
    typeof key === 'object' &&
    key !== null &&
    !Array.isArray(key) &&
    Object.keys(key).length === keyAttributes.length &&
    keyAttributes.every((name) => typeof (key as Item)[name] === 'string');
  if (!valid) {
    throw storeErrors.invalidCursor(cursor);
  }
  return key as Item;
}

/**
 * One page of a query. Reads until it has `limit + 1` matching items (a filter may drop some) or
 * the query is exhausted, so `nextCursor` is present exactly when another item exists. The cursor is
 * the key (`keyAttributes`: table and index keys) of the page's last item.
 */
export async function queryPage<T>(
  db: Db,
  input: QueryCommandInput,
  keyAttributes: readonly string[],
  request: PageRequest,
  toItem: (item: Item) => T,
): Promise<Page<T>> {
  const limit = pageLimit(request.limit);
  const collected: Item[] = [];
  let startKey = request.cursor === undefined ? undefined : decodeCursor(request.cursor, keyAttributes);
  do {
    const wanted = limit + 1 - collected.length;
    const output = await translated(`Querying ${input.TableName}`, () =>
      db.doc.send(
        new QueryCommand({
          ...input,
          ExclusiveStartKey: startKey,
          // With a filter, reading only `wanted` items per request could take many round trips.
          Limit: input.FilterExpression === undefined ? wanted : Math.max(wanted, 200),
        }),
      ),
    );
    collected.push(...(output.Items ?? []));
    startKey = output.LastEvaluatedKey;
  } while (collected.length <= limit && startKey !== undefined);
  const pageItems = collected.slice(0, limit);
  const page: Page<T> = { items: pageItems.map(toItem) };
  const last = pageItems.at(-1);
  if (collected.length > limit && last !== undefined) {
    page.nextCursor = encodeCursor(Object.fromEntries(keyAttributes.map((name) => [name, last[name]])));
  }
  return page;
}

/** Every item a query matches, following LastEvaluatedKey. */
export async function queryAll(db: Db, input: QueryCommandInput): Promise<Item[]> {
  const items: Item[] = [];
  let startKey: Item | undefined;
  do {
    const output = await translated(`Querying ${input.TableName}`, () =>
      db.doc.send(new QueryCommand({ ...input, ExclusiveStartKey: startKey })),
    );
    items.push(...(output.Items ?? []));
    startKey = output.LastEvaluatedKey;
  } while (startKey !== undefined);
  return items;
}

/** Runs a read, translating SDK errors (above all, a missing table) into Stackline errors. */
async function translated<T>(what: string, read: () => Promise<T>): Promise<T> {
  try {
    return await read();
  } catch (error) {
    throw translateError(error, what);
  }
}

/** Strongly consistent BatchGetItem of any number of keys from one table; missing keys are left out. */
export async function batchGet(db: Db, table: string, keys: Key[]): Promise<Item[]> {
  const unique = [...new Map(keys.map((key) => [`${key.pk}\u0000${key.sk}`, key])).values()];
  const items: Item[] = [];
  for (let i = 0; i < unique.length; i += 100) {
    let pending: Item[] | undefined = unique.slice(i, i + 100);
    for (let attempt = 0; pending && pending.length > 0; attempt++) {
      if (attempt > 0) await sleep(backoffMs(attempt));
      const output: BatchGetCommandOutput = await translated(`Reading from ${table}`, () =>
        db.doc.send(new BatchGetCommand({ RequestItems: { [table]: { Keys: pending, ConsistentRead: true } } })),
      );
      items.push(...(output.Responses?.[table] ?? []));
      pending = output.UnprocessedKeys?.[table]?.Keys;
    }
  }
  return items;
}

// ---------- Transactions ----------

/**
 * One action of an optimistic transaction, and what a failed condition on it means: `retry` (state
 * read by this attempt went stale: read again) or a function making the error to throw (a real
 * conflict or a missing item, found by re-reading).
 */
export interface TransactionAction {
  item: TransactItem;
  onConditionFailed: 'retry' | (() => Promise<Error> | Error);
}

const MAX_ATTEMPTS = 200;
const RETRYABLE_REASONS = new Set(['TransactionConflict', 'ThrottlingError', 'ProvisionedThroughputExceeded']);

/**
 * Runs `attempt` (read state, decide, return the actions and the result) and writes its actions in
 * one TransactWriteItems. When the transaction is cancelled because state it relied on changed, waits
 * a random (jittered, growing) delay and runs `attempt` again; a condition marked with an error
 * factory throws that error instead. Returning no actions commits nothing and returns the result.
 */
export async function transactOptimistically<R>(
  db: Db,
  what: string,
  attempt: () => Promise<{ actions: TransactionAction[]; result: R }>,
): Promise<R> {
  for (let attemptNumber = 0; attemptNumber < MAX_ATTEMPTS; attemptNumber++) {
    if (attemptNumber > 0) await sleep(backoffMs(attemptNumber));
    const { actions, result } = await attempt();
    if (actions.length === 0) return result;
    if (actions.length > MAX_TRANSACTION_ITEMS) {
      throw new ValidationError(
        `${what} needs ${actions.length} writes in one transaction; DynamoDB allows ${MAX_TRANSACTION_ITEMS}`,
        { context: { actions: actions.length } },
      );
    }
    try {
      await db.doc.send(new TransactWriteCommand({ TransactItems: actions.map((action) => action.item) }));
      return result;
    } catch (error) {
      const reasons = cancellationReasons(error);
      if (reasons === undefined) {
        if (isThrottling(error)) continue;
        throw translateError(error, what);
      }
      let retry = false;
      for (const [index, reason] of reasons.entries()) {
        const code = reason.Code;
        if (code === undefined || code === 'None') continue;
        if (code === 'ConditionalCheckFailed') {
          const onFailed = actions[index]?.onConditionFailed;
          if (onFailed === undefined || onFailed === 'retry') retry = true;
          else throw await onFailed();
        } else if (RETRYABLE_REASONS.has(code)) {
          retry = true;
        } else {
          throw translateError(error, what);
        }
      }
      if (!retry) throw translateError(error, what);
    }
  }
  throw new ConflictError(`${what}: gave up after ${MAX_ATTEMPTS} attempts lost to concurrent writers; try again`, {
    context: { attempts: MAX_ATTEMPTS },
  });
}

function cancellationReasons(error: unknown): { Code?: string }[] | undefined {
  const e = error as { name?: string; CancellationReasons?: { Code?: string }[] } | undefined;
  return e?.name === 'TransactionCanceledException' ? (e.CancellationReasons ?? []) : undefined;
}

function isThrottling(error: unknown): boolean {
  const name = (error as { name?: string } | undefined)?.name;
  return name === 'ProvisionedThroughputExceededException' || name === 'ThrottlingException';
}

export function isConditionalCheckFailed(error: unknown): boolean {
  return (error as { name?: string } | undefined)?.name === 'ConditionalCheckFailedException';
}

/** Full jitter on an exponential base: spreads racing writers out instead of retrying in lockstep. */
function backoffMs(attempt: number): number {
  return Math.random() * Math.min(100, 4 * 2 ** Math.min(attempt, 10));
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/** Maps SDK errors that are not about our conditions to Stackline errors that say what to do. */
export function translateError(error: unknown, what: string): unknown {
  if (error instanceof StacklineError) return error;
  const e = error as { name?: string; message?: string } | undefined;
  if (e?.name === 'ResourceNotFoundException') {
    // Not a missing record (those are NotFoundError): the stack points at tables that are not there.
    return new StackConfigError(
      `${what}: a DynamoDB metadata table or index does not exist (${e.message}). Create the tables with ` +
        '`stackline stack provision <stack>` (emulators and dev accounts) or by deploying the CDK stack, ' +
        "and check the stack's table prefix and region.",
      { cause: error },
    );
  }
  if (e?.name === 'ValidationException' && /size/i.test(e.message ?? '')) {
    return new ValidationError(
      `${what}: the record is too large for DynamoDB (400 KB per item): ${e.message}. Keep large values (logs, metadata) in artifacts instead.`,
      { cause: error },
    );
  }
  return error;
}

export { pageLimit, uniqueTags };

/**
 * One page of every record of a kind (stacks, artifacts, models), in name order, from a `byName`
 * index whose partition key is the constant `kind`; a tag filter keeps records carrying the tag.
 */
export function listByName<T>(
  db: Db,
  table: { TableName: string; IndexName: string },
  kind: string,
  filter: PageRequest & { tag?: string },
): Promise<Page<T>> {
  const e = new Expression();
  const key = `${e.path('byNamePk')} = ${e.value(kind)}`;
  if (filter.tag !== undefined) e.condition(`contains(${e.path('tags')}, ${e.value(filter.tag)})`);
  const { ConditionExpression, ...names } = e.build();
  return queryPage(
    db,
    { ...table, KeyConditionExpression: key, FilterExpression: ConditionExpression, ...names },
    ['pk', 'sk', 'byNamePk', 'byNameSk'],
    filter,
    (item) => recordOf<T>(item),
  );
}
