import { GetCommand, QueryCommand } from '@aws-sdk/lib-dynamodb';
import { newId, nowIso } from '../../util/ids.ts';
import type { ArtifactRepository } from '../metadata-store.ts';
import { storeErrors } from '../store-errors.ts';
import type {
  ArtifactSummary,
  ArtifactVersion,
  ArtifactVersionDraft,
  Page,
  StepRun,
  Tag,
  TagFilter,
} from '../types.ts';
import { keys } from './keys.ts';
import {
  batchGet,
  type Db,
  Expression,
  type Item,
  listByName,
  queryAll,
  queryPage,
  recordOf,
  sortSteps,
  type TransactionAction,
  transactOptimistically,
  translateError,
  uniqueTags,
  updateAction,
  withoutUndefined,
} from './support.ts';
import { INDEXES } from './table-definitions.ts';

/**
 * Artifact versions (artifacts table). Versions of one name share a partition,
 * `ARTIFACT#<name> / V#<zero-padded number>`, so "latest" and "newest first" are queries on it; the
 * summary item `ARTIFACT#<name> / SUMMARY` is the version counter and what `list` returns; an
 * immutable pointer `AV#<id>` finds a version by id.
 */
export class DynamoDbArtifactRepository implements ArtifactRepository {
  constructor(private readonly db: Db) {}

  async createVersion(draft: ArtifactVersionDraft): Promise<ArtifactVersion> {
    return this.db.queue.run([artifactQueueKey(draft.name)], () =>
      transactOptimistically(this.db, `Creating a version of artifact "${draft.name}"`, async () => {
        const { actions, versions } = await planArtifactVersions(this.db, [draft], nowIso());
        return { actions, result: versions[0]! };
      }),
    );
  }

  async getVersion(name: string, version: number | 'latest' = 'latest'): Promise<ArtifactVersion> {
    if (version === 'latest') {
      const output = await this.db.doc
        .send(
          new QueryCommand({
            TableName: this.#table,
            KeyConditionExpression: 'pk = :pk AND begins_with(sk, :v)',
            ExpressionAttributeValues: { ':pk': keys.artifactSummary(name).pk, ':v': 'V#' },
            ScanIndexForward: false,
            Limit: 1,
            ConsistentRead: true,
          }),
        )
        .catch((error: unknown) => {
          throw translateError(error, `Reading artifact "${name}"`);
        });
      const item = output.Items?.[0];
      if (item === undefined) {
        throw storeErrors.artifactVersionMissing(name, 'latest');
      }
      return recordOf<ArtifactVersion>(item);
    }
    const item = await this.#get(keys.artifactVersion(name, version));
    if (item === undefined) {
      throw storeErrors.artifactVersionMissing(name, version);
    }
    return recordOf<ArtifactVersion>(item);
  }

  async getVersionById(id: string): Promise<ArtifactVersion> {
    const pointer = await this.#get(keys.artifactVersionPointer(id));
    const item = pointer && (await this.#get(keys.versionOf(pointer)));
    if (item === undefined) {
      throw storeErrors.artifactVersionNotFound(id);
    }
    return recordOf<ArtifactVersion>(item);
  }

  /** In the order asked for; unknown ids are skipped. */
  async getVersionsByIds(ids: string[]): Promise<ArtifactVersion[]> {
    if (ids.length === 0) return [];
    const pointers = await batchGet(this.db, this.#table, ids.map(keys.artifactVersionPointer));
    const items = await batchGet(
      this.db,
      this.#table,
      pointers.map((pointer) => keys.versionOf(pointer)),
    );
    const byId = new Map(items.map((item) => [item.id as string, recordOf<ArtifactVersion>(item)]));
    return ids.flatMap((id) => byId.get(id) ?? []);
  }

  /**
   * One summary per artifact name, by name (the `byName` index). A summary's tags are the union of its
   * versions' tags, and the tag filter keeps names with at least one version carrying the tag.
   */
  async list(filter: TagFilter = {}): Promise<Page<ArtifactSummary>> {
    return listByName<ArtifactSummary>(
      this.db,
      { TableName: this.#table, IndexName: INDEXES.artifacts.byName },
      'ARTIFACT',
      filter,
    );
  }

  async listVersions(name: string, filter: TagFilter = {}): Promise<Page<ArtifactVersion>> {
    const e = new Expression();
    const key = `pk = ${e.value(keys.artifactSummary(name).pk)} AND begins_with(sk, ${e.value('V#')})`;
    if (filter.tag !== undefined) e.condition(`contains(${e.path('tags')}, ${e.value(filter.tag)})`);
    const { ConditionExpression, ...names } = e.build();
    return queryPage(
      this.db,
      {
        TableName: this.#table,
        KeyConditionExpression: key,
        FilterExpression: ConditionExpression,
        ScanIndexForward: false,
        ConsistentRead: true,
        ...names,
      },
      ['pk', 'sk'],
      filter,
      (item) => recordOf<ArtifactVersion>(item),
    );
  }

  async consumers(artifactVersionId: string): Promise<StepRun[]> {
    const edges = await queryAll(this.db, {
      TableName: this.db.tables.runs,
      KeyConditionExpression: 'pk = :pk',
      ExpressionAttributeValues: { ':pk': keys.consumer(artifactVersionId, '').pk },
      ConsistentRead: true,
    });
    const steps = await batchGet(
      this.db,
      this.db.tables.runs,
      edges.map((edge) => keys.step(edge.runId, String(edge.sk).slice('STEP#'.length))),
    );
    return sortSteps(steps.map((item) => recordOf<StepRun>(item)));
  }

  async addTags(artifactVersionId: string, tags: Tag[]): Promise<void> {
    await transactOptimistically(this.db, `Tagging artifact version "${artifactVersionId}"`, async () => {
      const pointer = await this.#get(keys.artifactVersionPointer(artifactVersionId));
      const version = pointer && (await this.#get(keys.versionOf(pointer)));
      if (version === undefined) {
        throw storeErrors.artifactVersionNotFound(artifactVersionId);
      }
      const merged = uniqueTags([...version.tags, ...tags]);
      if (merged.length === version.tags.length) return { actions: [], result: undefined };
      const summary = await this.#get(keys.artifactSummary(version.name));
      const actions = [
        revisedUpdate(this.#table, { pk: version.pk, sk: version.sk }, version.rev, (e) => e.set(['tags'], merged)),
      ];
      // Fan-out item outputs have no summary (they are not numbered from it).
      if (summary !== undefined) {
        actions.push(
          revisedUpdate(this.#table, keys.artifactSummary(version.name), summary.rev, (e) =>
            e.set(['tags'], uniqueTags([...(summary.tags ?? []), ...tags])),
          ),
        );
      }
      return { actions, result: undefined };
    });
  }

  get #table(): string {
    return this.db.tables.artifacts;
  }

  async #get(key: { pk: string; sk: string }): Promise<Item | undefined> {
    try {
      const output = await this.db.doc.send(new GetCommand({ TableName: this.#table, Key: key, ConsistentRead: true }));
      return output.Item;
    } catch (error) {
      throw translateError(error, `Reading ${key.pk}`);
    }
  }
}

/** The local queue key of an artifact name's version counter. */
export function artifactQueueKey(name: string): string {
  return `artifact:${name}`;
}

/** The version record a draft becomes under `number` (tags deduplicated, absent fields left out). */
function versionFromDraft(draft: ArtifactVersionDraft, number: number, createdAt: string): ArtifactVersion {
  return withoutUndefined<ArtifactVersion>({
    id: draft.id ?? newId('av'),
    name: draft.name,
    version: number,
    contentHash: draft.contentHash,
    uri: draft.uri,
    size: draft.size,
    materializer: draft.materializer,
    dataType: draft.dataType,
    metadata: draft.metadata,
    tags: uniqueTags(draft.tags),
    producerRunId: draft.producerRunId,
    producerStepRunId: draft.producerStepRunId,
    createdAt,
  });
}

/**
 * Plans the creation of artifact versions (for `createVersion` and `completeStep`): reads each
 * name's summary (the version counter), numbers the drafts after it, and returns the transaction
 * actions. Every summary write is conditioned on the revision read, so a concurrent writer that
 * took a number first cancels the transaction and the caller re-plans: numbers come out 1, 2, 3…
 * with no duplicates and no gaps.
 */
export async function planArtifactVersions(
  db: Db,
  drafts: ArtifactVersionDraft[],
  createdAt: string,
): Promise<{ actions: TransactionAction[]; versions: ArtifactVersion[] }> {
  const table = db.tables.artifacts;
  const names = [...new Set(drafts.map((draft) => draft.name))];
  const summaries = new Map(
    (await batchGet(db, table, names.map(keys.artifactSummary))).map((item) => [item.name as string, item]),
  );
  const latest = new Map(names.map((name) => [name, (summaries.get(name)?.latestVersion as number) ?? 0]));
  const versions = drafts.map((draft) => {
    const number = latest.get(draft.name)! + 1;
    latest.set(draft.name, number);
    return versionFromDraft(draft, number, createdAt);
  });
  const actions: TransactionAction[] = [];
  for (const name of names) {
    const summary = summaries.get(name);
    const ofName = versions.filter((version) => version.name === name);
    const latestVersion = latest.get(name)!;
    const tags = uniqueTags([...(summary?.tags ?? []), ...ofName.flatMap((version) => version.tags)]);
    const updatedAt = summary !== undefined && summary.updatedAt > createdAt ? summary.updatedAt : createdAt;
    if (summary === undefined) {
      actions.push({
        item: {
          Put: {
            TableName: table,
            Item: {
              ...keys.artifactSummary(name),
              name,
              latestVersion,
              versionCount: latestVersion,
              tags,
              updatedAt,
              rev: 1,
              byNamePk: 'ARTIFACT',
              byNameSk: name,
            },
            ConditionExpression: 'attribute_not_exists(pk)',
          },
        },
        onConditionFailed: 'retry',
      });
    } else {
      actions.push(
        revisedUpdate(table, keys.artifactSummary(name), summary.rev, (e) =>
          e
            .set(['latestVersion'], latestVersion)
            .set(['versionCount'], latestVersion)
            .set(['tags'], tags)
            .set(['updatedAt'], updatedAt),
        ),
      );
    }
  }
  for (const [index, version] of versions.entries()) {
    const callerChoseId = drafts[index]!.id !== undefined;
    actions.push(
      {
        item: {
          Put: {
            TableName: table,
            Item: { ...keys.artifactVersion(version.name, version.version), ...version, rev: 0 },
            ConditionExpression: 'attribute_not_exists(pk)',
          },
        },
        onConditionFailed: 'retry',
      },
      {
        item: {
          Put: {
            TableName: table,
            Item: { ...keys.artifactVersionPointer(version.id), name: version.name, version: version.version },
            ConditionExpression: 'attribute_not_exists(pk)',
          },
        },
        // A generated id cannot collide (ULID); a caller's id can.
        onConditionFailed: callerChoseId
          ? () =>
              storeErrors.alreadyExists('Artifact version', version.id, {
                artifactVersionId: version.id,
                key: keys.artifactVersionPointer(version.id),
              })
          : 'retry',
      },
    );
  }
  return { actions, versions };
}

/**
 * Plans the outputs of one fan-out item (step run `stepRunId`, item `index`): each version is keyed
 * by the step run (`keys.itemVersion`) and numbered by the item (index + 1), so items completing
 * together write disjoint items and never contend on the name's counter. They stay out of the
 * name's summary: `artifacts list` shows the collected output, not each item's.
 */
export function planItemVersions(
  db: Db,
  drafts: ArtifactVersionDraft[],
  createdAt: string,
  item: { stepRunId: string; index: number; outputNames: string[] },
): { actions: TransactionAction[]; versions: ArtifactVersion[] } {
  const table = db.tables.artifacts;
  const actions: TransactionAction[] = [];
  const versions = drafts.map((draft, i) => {
    const version = versionFromDraft(draft, item.index + 1, createdAt);
    const key = keys.itemVersion(version.name, item.stepRunId, item.outputNames[i]!);
    actions.push(
      {
        item: {
          Put: {
            TableName: table,
            Item: { ...key, ...version, rev: 0 },
            ConditionExpression: 'attribute_not_exists(pk)',
          },
        },
        onConditionFailed: 'retry',
      },
      {
        item: {
          Put: {
            TableName: table,
            Item: {
              ...keys.artifactVersionPointer(version.id),
              name: version.name,
              version: version.version,
              versionSk: key.sk,
            },
            ConditionExpression: 'attribute_not_exists(pk)',
          },
        },
        onConditionFailed:
          draft.id === undefined
            ? 'retry'
            : () =>
                storeErrors.alreadyExists('Artifact version', version.id, {
                  artifactVersionId: version.id,
                  key: keys.artifactVersionPointer(version.id),
                }),
      },
    );
    return version;
  });
  return { actions, versions };
}

/**
 * An update conditioned on the item's revision (`rev`) being the one read, bumping it: optimistic
 * locking for read-modify-write changes (tag lists). A failed condition means "read again".
 */
export function revisedUpdate(
  table: string,
  key: { pk: string; sk: string },
  rev: number | undefined,
  change: (e: Expression) => Expression,
): TransactionAction {
  const e = change(new Expression());
  if (rev === undefined) {
    e.set(['rev'], 1).condition('attribute_exists(pk) AND attribute_not_exists(rev)');
  } else {
    e.set(['rev'], rev + 1).condition(`${e.path('rev')} = ${e.value(rev)}`);
  }
  return { item: updateAction(table, key, e), onConditionFailed: 'retry' };
}
