import { GetCommand, type NativeAttributeValue, PutCommand, QueryCommand, UpdateCommand } from '@aws-sdk/lib-dynamodb';
import { ConflictError, ValidationError } from '../../errors.ts';
import { newId, nowIso } from '../../util/ids.ts';
import type { ModelRepository, NewModel, PromoteOptions } from '../metadata-store.ts';
import { assertPromotionGate, checkPromotion, policyApplies, producingRunId } from '../promotion-rules.ts';
import { storeErrors } from '../store-errors.ts';
import { assertVersionLabel } from '../store-rules.ts';
import {
  type ArtifactVersion,
  EXCLUSIVE_STAGES,
  type Metadata,
  MODEL_STAGES,
  type ModelArtifactLink,
  type ModelArtifactRole,
  type ModelRecord,
  type ModelStage,
  type ModelVersion,
  type ModelVersionRef,
  type Page,
  type PageRequest,
  type PromotionGate,
  type RunStatus,
  type StageChange,
  type Tag,
  type TagFilter,
} from '../types.ts';
import { revisedUpdate } from './dynamodb-artifact-repository.ts';
import { keys } from './keys.ts';
import {
  type Db,
  Expression,
  type Item,
  isConditionalCheckFailed,
  type Key,
  listByName,
  queryPage,
  recordOf,
  type TransactionAction,
  transactOptimistically,
  translateError,
  uniqueTags,
  updateAction,
  withoutUndefined,
} from './support.ts';
import { INDEXES } from './table-definitions.ts';

/**
 * Models and their versions (models table). Everything about one model lives in its partition
 * `MODEL#<name>`: the model item (`MODEL`, also the version counter and the stage-history sequence),
 * versions (`V#<number>`), version names (`NAME#<name>`), stage holders (`STAGE#staging`,
 * `STAGE#production`), aliases (`ALIAS#<alias>`) and stage history (`H#<seq>`). Unique names,
 * exclusive stages and aliases are items whose conditional writes go in the same transaction as the
 * version updates, so they cannot disagree even under concurrent promotions.
 */
export class DynamoDbModelRepository implements ModelRepository {
  constructor(private readonly db: Db) {}

  async create(model: NewModel): Promise<ModelRecord> {
    if (model.promotionGate !== undefined) assertPromotionGate(model.promotionGate);
    const item = newModelItem(model, nowIso());
    try {
      await this.db.doc.send(
        new PutCommand({ TableName: this.#table, Item: item, ConditionExpression: 'attribute_not_exists(pk)' }),
      );
    } catch (error) {
      if (isConditionalCheckFailed(error)) {
        throw storeErrors.alreadyExists('Model', model.name, { model: model.name, key: keys.model(model.name) });
      }
      throw translateError(error, `Creating model "${model.name}"`);
    }
    return recordOf<ModelRecord>(item);
  }

  async setPromotionGate(model: string, gate: PromotionGate | null): Promise<ModelRecord> {
    if (gate !== null) assertPromotionGate(gate);
    const e = new Expression().setOrRemove(['promotionGate'], gate ?? undefined).set(['updatedAt'], nowIso());
    e.condition('attribute_exists(pk)');
    try {
      const output = await this.db.doc.send(
        new UpdateCommand({ TableName: this.#table, Key: keys.model(model), ...e.build(), ReturnValues: 'ALL_NEW' }),
      );
      return recordOf<ModelRecord>(output.Attributes!);
    } catch (error) {
      if (isConditionalCheckFailed(error)) {
        throw storeErrors.modelNotFound(model, { cause: error });
      }
      throw translateError(error, `Setting the promotion gate of model "${model}"`);
    }
  }

  async ensure(model: { name: string; description?: string; tags?: Tag[] }): Promise<ModelRecord> {
    const existing = await this.#get(keys.model(model.name));
    if (existing !== undefined) return recordOf<ModelRecord>(existing);
    try {
      return await this.create(model);
    } catch (error) {
      // Created by someone else in the meantime: theirs is the model.
      if (error instanceof ConflictError) return this.get(model.name);
      throw error;
    }
  }

  async get(name: string): Promise<ModelRecord> {
    return recordOf<ModelRecord>(await this.#model(name));
  }

  async list(filter: TagFilter = {}): Promise<Page<ModelRecord>> {
    return listByName<ModelRecord>(
      this.db,
      { TableName: this.#table, IndexName: INDEXES.models.byName },
      'MODEL',
      filter,
    );
  }

  async createVersion(
    model: string,
    init: { name?: string; description?: string; tags?: Tag[]; metadata?: Metadata; runId?: string } = {},
  ): Promise<ModelVersion> {
    if (init.name !== undefined) assertVersionLabel(model, 'version name', init.name);
    return this.db.queue.run([`model:${model}`], () =>
      transactOptimistically(this.db, `Creating a version of model "${model}"`, async () => {
        const modelItem = await this.#get(keys.model(model));
        const now = nowIso();
        const expected = (modelItem?.latestVersion as number | undefined) ?? 0;
        const number = expected + 1;
        const version = withoutUndefined<ModelVersion>({
          id: newId('mv'),
          model,
          number,
          name: init.name,
          description: init.description,
          aliases: [],
          tags: uniqueTags(init.tags ?? []),
          metadata: init.metadata ?? {},
          artifacts: [],
          runIds: init.runId === undefined ? [] : [init.runId],
          createdAt: now,
          updatedAt: now,
        });
        const { aliases: _aliases, ...stored } = version;
        const actions: TransactionAction[] = [];
        if (modelItem === undefined) {
          actions.push({
            item: {
              Put: {
                TableName: this.#table,
                Item: { ...newModelItem({ name: model }, now), latestVersion: number },
                ConditionExpression: 'attribute_not_exists(pk)',
              },
            },
            onConditionFailed: 'retry',
          });
        } else {
          // The counter: only the writer that read the current value may take the next number.
          const e = new Expression().set(['latestVersion'], number).set(['updatedAt'], now);
          e.condition(`${e.path('latestVersion')} = ${e.value(expected)}`);
          actions.push({ item: updateAction(this.#table, keys.model(model), e), onConditionFailed: 'retry' });
        }
        actions.push(
          this.#putNew({ ...keys.modelVersion(model, number), ...stored, rev: 0 }, 'retry'),
          this.#putNew({ ...keys.modelVersionPointer(version.id), model, number }, 'retry'),
        );
        if (init.name !== undefined) {
          const name = init.name;
          actions.push(
            this.#putNew({ ...keys.versionName(model, name), number }, async () => {
              const taken = await this.#get(keys.versionName(model, name));
              return new ConflictError(
                `Model "${model}" already has a version named "${name}" (version ${taken?.number})`,
                { context: { model, name, version: taken?.number, key: keys.versionName(model, name) } },
              );
            }),
          );
        }
        if (init.runId !== undefined) {
          const runId = init.runId;
          actions.push({
            item: {
              ConditionCheck: {
                TableName: this.db.tables.runs,
                Key: keys.run(runId),
                ConditionExpression: 'attribute_exists(pk)',
              },
            },
            onConditionFailed: () => storeErrors.runNotFound(runId),
          });
        }
        return { actions, result: version };
      }),
    );
  }

  /**
   * Strings resolve as `latest`, then a stage (`archived` → the highest-numbered archived version),
   * then an alias, then a version name.
   */
  async getVersion(model: string, ref: ModelVersionRef): Promise<ModelVersion> {
    const modelItem = await this.#model(model);
    const item = await this.#resolve(model, modelItem, ref);
    if (item !== undefined) return toVersion(item);
    throw storeErrors.unresolvedModelVersion(model, ref);
  }

  async getVersionById(id: string): Promise<ModelVersion> {
    return toVersion(await this.#versionById(id));
  }

  async listVersions(model: string, filter: TagFilter & { stage?: ModelStage } = {}): Promise<Page<ModelVersion>> {
    await this.#model(model);
    const e = new Expression();
    const key = `pk = ${e.value(keys.model(model).pk)} AND begins_with(sk, ${e.value('V#')})`;
    if (filter.stage !== undefined) e.condition(`${e.path('stage')} = ${e.value(filter.stage)}`);
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
      toVersion,
    );
  }

  /** Links replace an earlier link of the same artifact name (a version has one artifact per name). */
  async linkArtifact(
    modelVersionId: string,
    role: ModelArtifactRole,
    artifactVersion: Pick<ArtifactVersion, 'id' | 'name'>,
  ): Promise<void> {
    await transactOptimistically(this.db, `Linking an artifact to model version "${modelVersionId}"`, async () => {
      const version = await this.#versionById(modelVersionId);
      const pointer = await this.#get(keys.artifactVersionPointer(artifactVersion.id), this.db.tables.artifacts);
      if (pointer === undefined) {
        throw storeErrors.artifactVersionNotFound(artifactVersion.id, { modelVersionId });
      }
      if (pointer.name !== artifactVersion.name) {
        throw new ValidationError(
          `Artifact version "${artifactVersion.id}" belongs to artifact "${pointer.name}", not "${artifactVersion.name}"`,
          { context: { modelVersionId, artifactVersionId: artifactVersion.id, artifact: artifactVersion.name } },
        );
      }
      const link: ModelArtifactLink = { role, artifactName: pointer.name, artifactVersionId: artifactVersion.id };
      const links = version.artifacts as ModelArtifactLink[];
      const index = links.findIndex((existing) => existing.artifactName === link.artifactName);
      const artifacts = index === -1 ? [...links, link] : links.map((existing, i) => (i === index ? link : existing));
      return {
        actions: [
          revisedUpdate(this.#table, keyOf(version), version.rev, (e) =>
            e.set(['artifacts'], artifacts).set(['updatedAt'], nowIso()),
          ),
        ],
        result: undefined,
      };
    });
  }

  async linkRun(modelVersionId: string, runId: string): Promise<void> {
    await transactOptimistically(this.db, `Linking run "${runId}" to model version "${modelVersionId}"`, async () => {
      const version = await this.#versionById(modelVersionId);
      if ((await this.#get(keys.run(runId), this.db.tables.runs)) === undefined) {
        throw storeErrors.runNotFound(runId);
      }
      const runIds = version.runIds as string[];
      return {
        actions: [
          revisedUpdate(this.#table, keyOf(version), version.rev, (e) =>
            e.set(['runIds'], runIds.includes(runId) ? runIds : [...runIds, runId]).set(['updatedAt'], nowIso()),
          ),
        ],
        result: undefined,
      };
    });
  }

  /**
   * One transaction per attempt: the stage-holder item (`STAGE#<stage>`, conditioned on the holder
   * read), the displaced holder's and the target's `stage` (conditioned on their current stage), the
   * history items and the model's history sequence. Racing forced promotions therefore serialize:
   * each winner displaces the previous holder, and exactly one version holds the stage at any time.
   * Moving a version to the stage it already has changes nothing and returns `[]`.
   */
  async setStage(model: string, version: number, stage: ModelStage, options: PromoteOptions): Promise<StageChange[]> {
    if (!MODEL_STAGES.includes(stage)) {
      throw storeErrors.unknownStage(stage, { model, version });
    }
    return this.db.queue.run([`model:${model}`], () =>
      transactOptimistically(this.db, `Moving model "${model}" version ${version} to ${stage}`, async () => {
        const exclusive = EXCLUSIVE_STAGES.includes(stage);
        const [modelItem, target, holderItem] = await this.#readForChange(
          model,
          version,
          exclusive ? keys.stageHolder(model, stage) : undefined,
          this.db.tables.stages,
        );
        const from = target.stage as ModelStage | undefined;
        if (from === stage) return { actions: [], result: [] };
        const policy = policyApplies(stage);
        const gate = policy ? (modelItem.promotionGate as PromotionGate | undefined) : undefined;
        const holderNumber = holderItem?.number as number | undefined;
        const [holderVersion, run] = await Promise.all([
          holderNumber === undefined ? undefined : this.#get(keys.modelVersion(model, holderNumber)),
          this.#producingRun(policy ? producingRunId(target as ModelVersion) : undefined),
        ]);
        const { displaceHolder } = checkPromotion({
          model,
          version,
          stage,
          gate,
          candidate: target as ModelVersion,
          producingRun: run && { id: run.id as string, status: run.status as RunStatus },
          holder:
            holderNumber === undefined ? undefined : { number: holderNumber, metadata: holderVersion?.metadata ?? {} },
          options,
        });
        const at = nowIso();
        const changes: StageChange[] = [];
        const actions: TransactionAction[] = [];
        if (exclusive) {
          if (holderNumber === undefined) {
            actions.push(this.#putNew({ ...keys.stageHolder(model, stage), number: version }, 'retry', this.#stages));
          } else if (displaceHolder) {
            actions.push(
              this.#moveStage(keys.modelVersion(model, holderNumber), stage, 'archived', at, (e) =>
                // The gate compared against this value: it must still be the holder's.
                gate === undefined
                  ? e
                  : conditionUnchanged(e, ['metadata', gate.metric], holderVersion?.metadata?.[gate.metric]),
              ),
              this.#conditionalUpdate(
                keys.stageHolder(model, stage),
                'number',
                holderNumber,
                (e) => e.set(['number'], version),
                this.#stages,
              ),
            );
            changes.push(stageChange(model, holderNumber, stage, 'archived', options, at));
          }
        }
        if (from !== undefined && EXCLUSIVE_STAGES.includes(from)) {
          // The version leaves an exclusive stage: release its holder item.
          const e = new Expression();
          e.condition(`${e.path('number')} = ${e.value(version)}`);
          actions.push({
            item: { Delete: { TableName: this.#stages, Key: keys.stageHolder(model, from), ...e.build() } },
            onConditionFailed: 'retry',
          });
        }
        actions.push(
          this.#moveStage(keyOf(target), from, stage, at, (e) => {
            if (!policy) return e;
            // The policy read the version's links and metrics: any change since (rev, metric) re-runs it.
            e.condition(`${e.path('rev')} = ${e.value(target.rev)}`);
            return gate === undefined
              ? e
              : conditionUnchanged(e, ['metadata', gate.metric], target.metadata?.[gate.metric]);
          }),
        );
        if (policy) {
          actions.push(this.#gateUnchanged(model, gate));
          if (run !== undefined) actions.push(this.#runStatusUnchanged(run));
        }
        changes.push(stageChange(model, version, from, stage, options, at));
        actions.push(...(await this.#history(model, changes)));
        return { actions, result: changes };
      }),
    );
  }

  async setAlias(
    model: string,
    alias: string,
    version: number,
    options: Omit<PromoteOptions, 'force'>,
  ): Promise<StageChange> {
    assertVersionLabel(model, 'alias', alias);
    return this.db.queue.run([`model:${model}`], () =>
      transactOptimistically(this.db, `Pointing alias "${alias}" of model "${model}" at ${version}`, async () => {
        const [, target, held] = await this.#readForChange(model, version, keys.alias(model, alias));
        const previous = held?.number as number | undefined;
        const at = nowIso();
        const actions: TransactionAction[] = [
          held === undefined
            ? this.#putNew({ ...keys.alias(model, alias), number: version }, 'retry')
            : this.#conditionalUpdate(keys.alias(model, alias), 'number', previous, (e) => e.set(['number'], version)),
          this.#touch(keyOf(target), at, (e) => e.add(['aliasSet'], new Set([alias]))),
        ];
        if (previous !== undefined && previous !== version) {
          actions.push(
            this.#touch(keys.modelVersion(model, previous), at, (e) => e.deleteFromSet(['aliasSet'], new Set([alias]))),
          );
        }
        const change = aliasChange(model, version, alias, previous, options, at);
        actions.push(...(await this.#history(model, [change])));
        return { actions, result: change };
      }),
    );
  }

  /** Recorded as an alias change whose `versionNumber` and `previousVersion` are the version that lost it. */
  async removeAlias(model: string, alias: string, options: Omit<PromoteOptions, 'force'>): Promise<StageChange> {
    return this.db.queue.run([`model:${model}`], () =>
      transactOptimistically(this.db, `Removing alias "${alias}" of model "${model}"`, async () => {
        await this.#model(model);
        const held = await this.#get(keys.alias(model, alias));
        if (held === undefined) {
          throw storeErrors.modelAliasNotFound(model, alias);
        }
        const holder = held.number as number;
        const at = nowIso();
        const e = new Expression();
        e.condition(`${e.path('number')} = ${e.value(holder)}`);
        const change = aliasChange(model, holder, alias, undefined, options, at, 'alias-removed');
        return {
          actions: [
            {
              item: { Delete: { TableName: this.#table, Key: keys.alias(model, alias), ...e.build() } },
              onConditionFailed: 'retry',
            },
            this.#touch(keys.modelVersion(model, holder), at, (u) => u.deleteFromSet(['aliasSet'], new Set([alias]))),
            ...(await this.#history(model, [change])),
          ],
          result: change,
        };
      }),
    );
  }

  async history(model: string, filter: PageRequest = {}): Promise<Page<StageChange>> {
    await this.#model(model);
    return queryPage(
      this.db,
      {
        TableName: this.#stages,
        KeyConditionExpression: 'pk = :pk AND begins_with(sk, :h)',
        ExpressionAttributeValues: { ':pk': keys.model(model).pk, ':h': 'H#' },
        ConsistentRead: true,
      },
      ['pk', 'sk'],
      filter,
      (item) => recordOf<StageChange>(item),
    );
  }

  get #table(): string {
    return this.db.tables.models;
  }

  get #stages(): string {
    return this.db.tables.stages;
  }

  async #producingRun(runId: string | undefined): Promise<Item | undefined> {
    if (runId === undefined) return undefined;
    const run = await this.#get(keys.run(runId), this.db.tables.runs);
    if (run === undefined) throw storeErrors.runNotFound(runId);
    return run;
  }

  /** The promotion policy read the run's status: the transaction holds only while it is the same. */
  #runStatusUnchanged(run: Item): TransactionAction {
    const e = new Expression();
    e.condition(`${e.path('status')} = ${e.value(run.status)}`);
    const { UpdateExpression: _none, ...condition } = e.build();
    return {
      item: {
        ConditionCheck: {
          TableName: this.db.tables.runs,
          Key: keys.run(run.id as string),
          ...condition,
          ConditionExpression: condition.ConditionExpression!,
        },
      },
      onConditionFailed: 'retry',
    };
  }

  /** The promotion policy read the model's gate: the transaction holds only while it is the same. */
  #gateUnchanged(model: string, gate: PromotionGate | undefined): TransactionAction {
    const e = new Expression();
    if (gate === undefined) e.condition(`attribute_not_exists(${e.path('promotionGate')})`);
    else {
      e.condition(`${e.path('promotionGate', 'metric')} = ${e.value(gate.metric)}`);
      e.condition(`${e.path('promotionGate', 'direction')} = ${e.value(gate.direction)}`);
    }
    const { UpdateExpression: _none, ...condition } = e.build();
    return {
      item: {
        ConditionCheck: {
          TableName: this.#table,
          Key: keys.model(model),
          ...condition,
          ConditionExpression: condition.ConditionExpression!,
        },
      },
      onConditionFailed: 'retry',
    };
  }

  async #get(key: Key, table: string = this.#table): Promise<Item | undefined> {
    try {
      const output = await this.db.doc.send(new GetCommand({ TableName: table, Key: key, ConsistentRead: true }));
      return output.Item;
    } catch (error) {
      throw translateError(error, `Reading ${key.pk} ${key.sk}`);
    }
  }

  async #model(name: string): Promise<Item> {
    const item = await this.#get(keys.model(name));
    if (item === undefined) throw storeErrors.modelNotFound(name);
    return item;
  }

  async #versionById(id: string): Promise<Item> {
    const pointer = await this.#get(keys.modelVersionPointer(id));
    const item = pointer && (await this.#get(keys.modelVersion(pointer.model, pointer.number)));
    if (item === undefined) {
      throw storeErrors.modelVersionNotFound(id);
    }
    return item;
  }

  /** Reads the model, one of its versions and a third item at once; missing model or version throws. */
  async #readForChange(
    model: string,
    number: number,
    other: Key | undefined,
    otherTable: string = this.#table,
  ): Promise<[Item, Item, Item | undefined]> {
    const [modelItem, version, otherItem] = await Promise.all([
      this.#get(keys.model(model)),
      this.#get(keys.modelVersion(model, number)),
      other && this.#get(other, otherTable),
    ]);
    if (modelItem === undefined) throw storeErrors.modelNotFound(model);
    if (version === undefined) {
      throw storeErrors.modelVersionNumberNotFound(model, number);
    }
    return [modelItem, version, otherItem];
  }

  async #resolve(model: string, modelItem: Item, ref: ModelVersionRef): Promise<Item | undefined> {
    if (typeof ref === 'number') return this.#get(keys.modelVersion(model, ref));
    if (ref === 'latest') {
      const latest = modelItem.latestVersion as number;
      return latest > 0 ? this.#get(keys.modelVersion(model, latest)) : undefined;
    }
    if (ref === 'archived') return this.#newestArchived(model);
    if ((MODEL_STAGES as readonly string[]).includes(ref)) {
      const holder = await this.#get(keys.stageHolder(model, ref), this.#stages);
      return holder && this.#get(keys.modelVersion(model, holder.number));
    }
    const aliased = await this.#get(keys.alias(model, ref));
    if (aliased !== undefined) return this.#get(keys.modelVersion(model, aliased.number));
    const named = await this.#get(keys.versionName(model, ref));
    return named && this.#get(keys.modelVersion(model, named.number));
  }

  /** Newest first through the model's versions until an archived one: a query, never a scan. */
  async #newestArchived(model: string): Promise<Item | undefined> {
    let startKey: Item | undefined;
    do {
      const output = await this.db.doc.send(
        new QueryCommand({
          TableName: this.#table,
          KeyConditionExpression: 'pk = :pk AND begins_with(sk, :v)',
          FilterExpression: '#stage = :archived',
          ExpressionAttributeNames: { '#stage': 'stage' },
          ExpressionAttributeValues: { ':pk': keys.model(model).pk, ':v': 'V#', ':archived': 'archived' },
          ScanIndexForward: false,
          ConsistentRead: true,
          ExclusiveStartKey: startKey,
        }),
      );
      if (output.Items?.[0] !== undefined) return output.Items[0];
      startKey = output.LastEvaluatedKey;
    } while (startKey !== undefined);
    return undefined;
  }

  #putNew(
    item: Item,
    onConditionFailed: TransactionAction['onConditionFailed'],
    table: string = this.#table,
  ): TransactionAction {
    return {
      item: { Put: { TableName: table, Item: item, ConditionExpression: 'attribute_not_exists(pk)' } },
      onConditionFailed,
    };
  }

  #conditionalUpdate(
    key: Key,
    attribute: string,
    expected: unknown,
    change: (e: Expression) => Expression,
    table: string = this.#table,
  ): TransactionAction {
    const e = change(new Expression());
    e.condition(`${e.path(attribute)} = ${e.value(expected)}`);
    return { item: updateAction(table, key, e), onConditionFailed: 'retry' };
  }

  /** Sets a version's stage, conditioned on the stage it had when read (absent = never staged). */
  #moveStage(
    key: Key,
    from: ModelStage | undefined,
    to: ModelStage,
    at: string,
    more: (e: Expression) => Expression = (e) => e,
  ): TransactionAction {
    const e = new Expression().set(['stage'], to).set(['updatedAt'], at).add(['rev'], 1);
    e.condition(
      from === undefined ? `attribute_not_exists(${e.path('stage')})` : `${e.path('stage')} = ${e.value(from)}`,
    );
    more(e);
    return { item: updateAction(this.#table, key, e), onConditionFailed: 'retry' };
  }

  #touch(key: Key, at: string, change: (e: Expression) => Expression): TransactionAction {
    const e = change(new Expression().set(['updatedAt'], at).add(['rev'], 1));
    e.condition('attribute_exists(pk)');
    return { item: updateAction(this.#table, key, e), onConditionFailed: 'retry' };
  }

  /**
   * History items for `changes` (stages table), numbered after the model's history counter, and the
   * counter bump: two racing writers cannot take the same number.
   */
  async #history(model: string, changes: StageChange[]): Promise<TransactionAction[]> {
    const counter = await this.#get(keys.historyCounter(model), this.#stages);
    const seq = (counter?.historySeq as number | undefined) ?? 0;
    const e = new Expression().set(['historySeq'], seq + changes.length);
    e.condition(
      seq === 0 ? `attribute_not_exists(${e.path('historySeq')})` : `${e.path('historySeq')} = ${e.value(seq)}`,
    );
    return [
      ...changes.map((change, index) =>
        this.#putNew({ ...keys.stageChange(model, seq + index + 1), ...change }, 'retry', this.#stages),
      ),
      { item: updateAction(this.#stages, keys.historyCounter(model), e), onConditionFailed: 'retry' },
    ];
  }
}

/** Conditions `path` on still holding `value` (absent when `value` is undefined). */
function conditionUnchanged(e: Expression, path: string[], value: unknown): Expression {
  return e.condition(
    value === undefined
      ? `attribute_not_exists(${e.path(...path)})`
      : `${e.path(...path)} = ${e.value(value as NativeAttributeValue)}`,
  );
}

function newModelItem(
  model: { name: string; description?: string; tags?: Tag[]; metadata?: Metadata; promotionGate?: PromotionGate },
  now: string,
) {
  return withoutUndefined({
    ...keys.model(model.name),
    name: model.name,
    description: model.description,
    promotionGate: model.promotionGate,
    tags: uniqueTags(model.tags ?? []),
    metadata: model.metadata ?? {},
    latestVersion: 0,
    createdAt: now,
    updatedAt: now,
    byNamePk: 'MODEL',
    byNameSk: model.name,
  });
}

function keyOf(item: Item): Key {
  return { pk: item.pk, sk: item.sk };
}

function toVersion(item: Item): ModelVersion {
  const aliases = [...((item.aliasSet as Set<string> | undefined) ?? [])].sort();
  return { ...recordOf<ModelVersion>(item), aliases };
}

function stageChange(
  model: string,
  versionNumber: number,
  fromStage: ModelStage | undefined,
  toStage: ModelStage,
  options: Omit<PromoteOptions, 'force'>,
  at: string,
): StageChange {
  return withoutUndefined<StageChange>({
    id: newId('sc'),
    model,
    versionNumber,
    kind: 'stage',
    fromStage,
    toStage,
    actor: options.actor,
    reason: options.reason,
    at,
  });
}

function aliasChange(
  model: string,
  versionNumber: number,
  alias: string,
  previousVersion: number | undefined,
  options: Omit<PromoteOptions, 'force'>,
  at: string,
  kind: 'alias' | 'alias-removed' = 'alias',
): StageChange {
  return withoutUndefined<StageChange>({
    id: newId('sc'),
    model,
    versionNumber,
    kind,
    alias,
    previousVersion,
    actor: options.actor,
    reason: options.reason,
    at,
  });
}
