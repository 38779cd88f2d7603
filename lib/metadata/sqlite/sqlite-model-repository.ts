import { ConflictError, ValidationError } from '../../errors.ts';
import { faultPoint } from '../../util/fault-points.ts';
import { newId, nowIso } from '../../util/ids.ts';
import type { ModelRepository, NewModel, PromoteOptions } from '../metadata-store.ts';
import { assertPromotionGate, checkPromotion, policyApplies, producingRunId } from '../promotion-rules.ts';
import { storeErrors } from '../store-errors.ts';
import { assertVersionLabel, pageLimit, uniqueTags } from '../store-rules.ts';
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
  type StageChange,
  type Tag,
  type TagFilter,
} from '../types.ts';
import {
  loadRunRow,
  type ModelRow,
  type ModelVersionRow,
  type StageChangeRow,
  toModel,
  toStageChange,
} from './rows.ts';
import {
  decodeCursor,
  groupBy,
  insertTags,
  json,
  parseJson,
  type Sql,
  tagCondition,
  toPage,
  whereClause,
} from './sql.ts';

export class SqliteModelRepository implements ModelRepository {
  constructor(private readonly sql: Sql) {}

  async create(model: NewModel): Promise<ModelRecord> {
    if (model.promotionGate !== undefined) assertPromotionGate(model.promotionGate);
    return this.sql.write(() => {
      if (this.findModelRow(model.name) !== undefined) {
        throw storeErrors.alreadyExists('Model', model.name, { model: model.name });
      }
      return toModel(this.insertModel(model));
    });
  }

  async setPromotionGate(model: string, gate: PromotionGate | null): Promise<ModelRecord> {
    if (gate !== null) assertPromotionGate(gate);
    return this.sql.write(() => {
      this.modelRow(model);
      this.sql.run(
        'UPDATE models SET promotion_gate = ?, updated_at = ? WHERE name = ?',
        gate === null ? null : json(gate),
        nowIso(),
        model,
      );
      return toModel(this.modelRow(model));
    });
  }

  async ensure(model: { name: string; description?: string; tags?: Tag[] }): Promise<ModelRecord> {
    return this.sql.write(() => toModel(this.findModelRow(model.name) ?? this.insertModel(model)));
  }

  async get(name: string): Promise<ModelRecord> {
    return toModel(this.modelRow(name));
  }

  async list(filter: TagFilter = {}): Promise<Page<ModelRecord>> {
    const limit = pageLimit(filter.limit);
    const where: string[] = [];
    const params: unknown[] = [];
    if (filter.tag !== undefined) {
      where.push(tagCondition('model', 'name'));
      params.push(filter.tag);
    }
    if (filter.cursor !== undefined) {
      where.push('name > ?');
      params.push(...decodeCursor(filter.cursor, ['string']));
    }
    const rows = this.sql.all<ModelRow>(
      `SELECT * FROM models ${whereClause(where)} ORDER BY name LIMIT ?`,
      ...params,
      limit + 1,
    );
    return toPage(
      rows,
      limit,
      (page) => page.map(toModel),
      (row) => [row.name],
    );
  }

  async createVersion(
    model: string,
    init: { name?: string; description?: string; tags?: Tag[]; metadata?: Metadata; runId?: string } = {},
  ): Promise<ModelVersion> {
    return this.sql.write(() => {
      const modelRow = this.findModelRow(model) ?? this.insertModel({ name: model });
      if (init.name !== undefined) {
        assertVersionLabel(model, 'version name', init.name);
        const taken = this.sql.get<{ number: number }>(
          'SELECT number FROM model_versions WHERE model = ? AND name = ?',
          model,
          init.name,
        );
        if (taken !== undefined) {
          throw new ConflictError(
            `Model "${model}" already has a version named "${init.name}" (version ${taken.number})`,
            {
              context: { model, name: init.name, version: taken.number },
            },
          );
        }
      }
      if (init.runId !== undefined) loadRunRow(this.sql, init.runId);
      const id = newId('mv');
      const number = modelRow.latest_version + 1;
      const now = nowIso();
      const tags = uniqueTags(init.tags ?? []);
      this.sql.run(
        `INSERT INTO model_versions (id, model, number, name, description, stage, tags, metadata, created_at, updated_at)
         VALUES (?, ?, ?, ?, ?, NULL, ?, ?, ?, ?)`,
        id,
        model,
        number,
        init.name ?? null,
        init.description ?? null,
        json(tags),
        json(init.metadata ?? {}),
        now,
        now,
      );
      faultPoint('model-version:allocated');
      this.sql.run('UPDATE models SET latest_version = ?, updated_at = ? WHERE name = ?', number, now, model);
      insertTags(this.sql, 'model_version', id, tags);
      if (init.runId !== undefined) {
        this.sql.run('INSERT INTO model_version_runs (model_version_id, run_id) VALUES (?, ?)', id, init.runId);
      }
      return this.hydrate([this.versionRowById(id)])[0]!;
    });
  }

  /**
   * Strings resolve as `latest`, then a stage (`archived` → the highest-numbered archived version),
   * then an alias, then a version name.
   */
  async getVersion(model: string, ref: ModelVersionRef): Promise<ModelVersion> {
    this.modelRow(model);
    const row = this.resolve(model, ref);
    if (row !== undefined) return this.hydrate([row])[0]!;
    throw storeErrors.unresolvedModelVersion(model, ref);
  }

  async getVersionById(id: string): Promise<ModelVersion> {
    return this.hydrate([this.versionRowById(id)])[0]!;
  }

  async listVersions(model: string, filter: TagFilter & { stage?: ModelStage } = {}): Promise<Page<ModelVersion>> {
    const limit = pageLimit(filter.limit);
    this.modelRow(model);
    const where = ['model = ?'];
    const params: unknown[] = [model];
    if (filter.stage !== undefined) {
      where.push('stage = ?');
      params.push(filter.stage);
    }
    if (filter.tag !== undefined) {
      where.push(tagCondition('model_version', 'id'));
      params.push(filter.tag);
    }
    if (filter.cursor !== undefined) {
      where.push('number < ?');
      params.push(...decodeCursor(filter.cursor, ['number']));
    }
    const rows = this.sql.all<ModelVersionRow>(
      `SELECT * FROM model_versions ${whereClause(where)} ORDER BY number DESC LIMIT ?`,
      ...params,
      limit + 1,
    );
    return toPage(
      rows,
      limit,
      (page) => this.hydrate(page),
      (row) => [row.number],
    );
  }

  /** Links replace an earlier link of the same artifact name (a version has one artifact per name). */
  async linkArtifact(
    modelVersionId: string,
    role: ModelArtifactRole,
    artifactVersion: Pick<ArtifactVersion, 'id' | 'name'>,
  ): Promise<void> {
    this.sql.write(() => {
      this.versionRowById(modelVersionId);
      const stored = this.sql.get<{ name: string }>(
        'SELECT name FROM artifact_versions WHERE id = ?',
        artifactVersion.id,
      );
      if (stored === undefined) {
        throw storeErrors.artifactVersionNotFound(artifactVersion.id, { modelVersionId });
      }
      if (stored.name !== artifactVersion.name) {
        throw new ValidationError(
          `Artifact version "${artifactVersion.id}" belongs to artifact "${stored.name}", not "${artifactVersion.name}"`,
          { context: { modelVersionId, artifactVersionId: artifactVersion.id, artifact: artifactVersion.name } },
        );
      }
      this.sql.run(
        `INSERT INTO model_version_artifacts (model_version_id, artifact_name, role, artifact_version_id)
         VALUES (?, ?, ?, ?)
         ON CONFLICT (model_version_id, artifact_name) DO UPDATE SET role = excluded.role,
           artifact_version_id = excluded.artifact_version_id`,
        modelVersionId,
        stored.name,
        role,
        artifactVersion.id,
      );
      this.touchVersion(modelVersionId, nowIso());
    });
  }

  async linkRun(modelVersionId: string, runId: string): Promise<void> {
    this.sql.write(() => {
      this.versionRowById(modelVersionId);
      loadRunRow(this.sql, runId);
      this.sql.run(
        'INSERT OR IGNORE INTO model_version_runs (model_version_id, run_id) VALUES (?, ?)',
        modelVersionId,
        runId,
      );
      this.touchVersion(modelVersionId, nowIso());
    });
  }

  /** Moving a version to the stage it already has changes nothing and returns `[]`. */
  async setStage(model: string, version: number, stage: ModelStage, options: PromoteOptions): Promise<StageChange[]> {
    if (!MODEL_STAGES.includes(stage)) {
      throw storeErrors.unknownStage(stage, { model, version });
    }
    return this.sql.write(() => {
      const target = this.versionRowByNumber(model, version);
      if (target.stage === stage) return [];
      const at = nowIso();
      const changes: StageChange[] = [];
      const holder = EXCLUSIVE_STAGES.includes(stage)
        ? this.sql.get<ModelVersionRow>('SELECT * FROM model_versions WHERE model = ? AND stage = ?', model, stage)
        : undefined;
      const policy = policyApplies(stage);
      const [candidate] = this.hydrate([target]);
      const runId = policy ? producingRunId(candidate!) : undefined;
      const { displaceHolder } = checkPromotion({
        model,
        version,
        stage,
        gate: policy ? toModel(this.modelRow(model)).promotionGate : undefined,
        candidate: candidate!,
        producingRun: runId === undefined ? undefined : { id: runId, status: loadRunRow(this.sql, runId).status },
        holder: holder && { number: holder.number, metadata: parseJson(holder.metadata) },
        options,
      });
      if (holder !== undefined && displaceHolder) {
        this.moveStage(holder, 'archived', at);
        changes.push(
          this.recordChange(model, holder.number, { kind: 'stage', from: stage, to: 'archived' }, options, at),
        );
      }
      faultPoint('stage:promoting');
      this.moveStage(target, stage, at);
      changes.push(
        this.recordChange(model, version, { kind: 'stage', from: target.stage ?? undefined, to: stage }, options, at),
      );
      return changes;
    });
  }

  async setAlias(
    model: string,
    alias: string,
    version: number,
    options: Omit<PromoteOptions, 'force'>,
  ): Promise<StageChange> {
    assertVersionLabel(model, 'alias', alias);
    return this.sql.write(() => {
      const target = this.versionRowByNumber(model, version);
      const at = nowIso();
      const previous = this.sql.get<{ id: string; number: number }>(
        `SELECT v.id, v.number FROM model_aliases a JOIN model_versions v ON v.id = a.model_version_id
         WHERE a.model = ? AND a.alias = ?`,
        model,
        alias,
      );
      this.sql.run(
        `INSERT INTO model_aliases (model, alias, model_version_id) VALUES (?, ?, ?)
         ON CONFLICT (model, alias) DO UPDATE SET model_version_id = excluded.model_version_id`,
        model,
        alias,
        target.id,
      );
      if (previous !== undefined) this.touchVersion(previous.id, at);
      this.touchVersion(target.id, at);
      return this.recordChange(model, version, { kind: 'alias', alias, previous: previous?.number }, options, at);
    });
  }

  /** Recorded as an alias change whose `versionNumber` and `previousVersion` are the version that lost it. */
  async removeAlias(model: string, alias: string, options: Omit<PromoteOptions, 'force'>): Promise<StageChange> {
    return this.sql.write(() => {
      this.modelRow(model);
      const holder = this.sql.get<{ id: string; number: number }>(
        `SELECT v.id, v.number FROM model_aliases a JOIN model_versions v ON v.id = a.model_version_id
         WHERE a.model = ? AND a.alias = ?`,
        model,
        alias,
      );
      if (holder === undefined) {
        throw storeErrors.modelAliasNotFound(model, alias);
      }
      const at = nowIso();
      this.sql.run('DELETE FROM model_aliases WHERE model = ? AND alias = ?', model, alias);
      this.touchVersion(holder.id, at);
      return this.recordChange(
        model,
        holder.number,
        { kind: 'alias-removed', alias, previous: undefined },
        options,
        at,
      );
    });
  }

  async history(model: string, filter: PageRequest = {}): Promise<Page<StageChange>> {
    const limit = pageLimit(filter.limit);
    this.modelRow(model);
    const after = filter.cursor === undefined ? 0 : decodeCursor(filter.cursor, ['number'])[0]!;
    const rows = this.sql.all<StageChangeRow>(
      'SELECT * FROM stage_changes WHERE model = ? AND seq > ? ORDER BY seq LIMIT ?',
      model,
      after,
      limit + 1,
    );
    return toPage(
      rows,
      limit,
      (page) => page.map(toStageChange),
      (row) => [row.seq],
    );
  }

  private findModelRow(name: string): ModelRow | undefined {
    return this.sql.get<ModelRow>('SELECT * FROM models WHERE name = ?', name);
  }

  private modelRow(name: string): ModelRow {
    const row = this.findModelRow(name);
    if (row === undefined) throw storeErrors.modelNotFound(name);
    return row;
  }

  private insertModel(model: NewModel): ModelRow {
    const now = nowIso();
    const tags = uniqueTags(model.tags ?? []);
    const row: ModelRow = {
      name: model.name,
      description: model.description ?? null,
      tags: json(tags),
      metadata: json(model.metadata ?? {}),
      latest_version: 0,
      created_at: now,
      updated_at: now,
      promotion_gate: model.promotionGate === undefined ? null : json(model.promotionGate),
    };
    this.sql.run(
      `INSERT INTO models (name, description, tags, metadata, latest_version, created_at, updated_at, promotion_gate)
       VALUES (@name, @description, @tags, @metadata, @latest_version, @created_at, @updated_at, @promotion_gate)`,
      row,
    );
    insertTags(this.sql, 'model', model.name, tags);
    return row;
  }

  private versionRowById(id: string): ModelVersionRow {
    const row = this.sql.get<ModelVersionRow>('SELECT * FROM model_versions WHERE id = ?', id);
    if (row === undefined) throw storeErrors.modelVersionNotFound(id);
    return row;
  }

  private versionRowByNumber(model: string, number: number): ModelVersionRow {
    this.modelRow(model);
    const row = this.sql.get<ModelVersionRow>(
      'SELECT * FROM model_versions WHERE model = ? AND number = ?',
      model,
      number,
    );
    if (row === undefined) {
      throw storeErrors.modelVersionNumberNotFound(model, number);
    }
    return row;
  }

  private resolve(model: string, ref: ModelVersionRef): ModelVersionRow | undefined {
    if (typeof ref === 'number') {
      return this.sql.get('SELECT * FROM model_versions WHERE model = ? AND number = ?', model, ref);
    }
    if (ref === 'latest') {
      return this.sql.get('SELECT * FROM model_versions WHERE model = ? ORDER BY number DESC LIMIT 1', model);
    }
    if ((MODEL_STAGES as readonly string[]).includes(ref)) {
      return this.sql.get(
        'SELECT * FROM model_versions WHERE model = ? AND stage = ? ORDER BY number DESC LIMIT 1',
        model,
        ref,
      );
    }
    return (
      this.sql.get<ModelVersionRow>(
        `SELECT v.* FROM model_aliases a JOIN model_versions v ON v.id = a.model_version_id
         WHERE a.model = ? AND a.alias = ?`,
        model,
        ref,
      ) ?? this.sql.get<ModelVersionRow>('SELECT * FROM model_versions WHERE model = ? AND name = ?', model, ref)
    );
  }

  private hydrate(rows: ModelVersionRow[]): ModelVersion[] {
    if (rows.length === 0) return [];
    const ids = json(rows.map((row) => row.id));
    const aliases = groupBy(
      this.sql.all<{ owner: string; alias: string }>(
        'SELECT model_version_id AS owner, alias FROM model_aliases WHERE model_version_id IN (SELECT value FROM json_each(?)) ORDER BY alias',
        ids,
      ),
    );
    const artifacts = groupBy(
      this.sql.all<{ owner: string; role: ModelArtifactRole; artifact_name: string; artifact_version_id: string }>(
        `SELECT model_version_id AS owner, role, artifact_name, artifact_version_id FROM model_version_artifacts
         WHERE model_version_id IN (SELECT value FROM json_each(?)) ORDER BY rowid`,
        ids,
      ),
    );
    const runs = groupBy(
      this.sql.all<{ owner: string; run_id: string }>(
        'SELECT model_version_id AS owner, run_id FROM model_version_runs WHERE model_version_id IN (SELECT value FROM json_each(?)) ORDER BY rowid',
        ids,
      ),
    );
    return rows.map((row) => {
      const version: ModelVersion = {
        id: row.id,
        model: row.model,
        number: row.number,
        aliases: (aliases.get(row.id) ?? []).map((entry) => entry.alias),
        tags: parseJson(row.tags),
        metadata: parseJson(row.metadata),
        artifacts: (artifacts.get(row.id) ?? []).map(
          (entry): ModelArtifactLink => ({
            role: entry.role,
            artifactName: entry.artifact_name,
            artifactVersionId: entry.artifact_version_id,
          }),
        ),
        runIds: (runs.get(row.id) ?? []).map((entry) => entry.run_id),
        createdAt: row.created_at,
        updatedAt: row.updated_at,
      };
      if (row.name !== null) version.name = row.name;
      if (row.description !== null) version.description = row.description;
      if (row.stage !== null) version.stage = row.stage;
      return version;
    });
  }

  private moveStage(row: ModelVersionRow, stage: ModelStage, at: string): void {
    this.sql.run('UPDATE model_versions SET stage = ?, updated_at = ? WHERE id = ?', stage, at, row.id);
  }

  private touchVersion(id: string, at: string): void {
    this.sql.run('UPDATE model_versions SET updated_at = ? WHERE id = ?', at, id);
  }

  private recordChange(
    model: string,
    versionNumber: number,
    change:
      | { kind: 'stage'; from: ModelStage | undefined; to: ModelStage }
      | { kind: 'alias' | 'alias-removed'; alias: string; previous: number | undefined },
    options: Omit<PromoteOptions, 'force'>,
    at: string,
  ): StageChange {
    const row: Omit<StageChangeRow, 'seq'> = {
      id: newId('sc'),
      model,
      version_number: versionNumber,
      kind: change.kind,
      from_stage: change.kind === 'stage' ? (change.from ?? null) : null,
      to_stage: change.kind === 'stage' ? change.to : null,
      alias: change.kind === 'stage' ? null : change.alias,
      previous_version: change.kind === 'stage' ? null : (change.previous ?? null),
      actor: options.actor,
      reason: options.reason ?? null,
      at,
    };
    const result = this.sql.run(
      `INSERT INTO stage_changes (id, model, version_number, kind, from_stage, to_stage, alias, previous_version, actor,
         reason, at)
       VALUES (@id, @model, @version_number, @kind, @from_stage, @to_stage, @alias, @previous_version, @actor,
         @reason, @at)`,
      row,
    );
    return toStageChange({ ...row, seq: Number(result.lastInsertRowid) });
  }
}
