import { nowIso } from '../../util/ids.ts';
import type { ArtifactRepository } from '../metadata-store.ts';
import { storeErrors } from '../store-errors.ts';
import { pageLimit, uniqueTags } from '../store-rules.ts';
import type {
  ArtifactSummary,
  ArtifactVersion,
  ArtifactVersionDraft,
  Page,
  StepRun,
  Tag,
  TagFilter,
} from '../types.ts';
import {
  type ArtifactVersionRow,
  hydrateStepRuns,
  insertArtifactVersion,
  type StepRunRow,
  toArtifactVersion,
} from './rows.ts';
import { decodeCursor, insertTags, json, parseJson, type Sql, tagCondition, toPage, whereClause } from './sql.ts';

export class SqliteArtifactRepository implements ArtifactRepository {
  constructor(private readonly sql: Sql) {}

  async createVersion(draft: ArtifactVersionDraft): Promise<ArtifactVersion> {
    return this.sql.write(() => insertArtifactVersion(this.sql, draft, nowIso()));
  }

  async getVersion(name: string, version: number | 'latest' = 'latest'): Promise<ArtifactVersion> {
    if (version === 'latest') {
      const row = this.sql.get<ArtifactVersionRow>(
        'SELECT * FROM artifact_versions WHERE name = ? ORDER BY version DESC LIMIT 1',
        name,
      );
      if (row === undefined) {
        throw storeErrors.artifactVersionMissing(name, 'latest');
      }
      return toArtifactVersion(row);
    }
    const row = this.sql.get<ArtifactVersionRow>(
      'SELECT * FROM artifact_versions WHERE name = ? AND version = ?',
      name,
      version,
    );
    if (row === undefined) {
      throw storeErrors.artifactVersionMissing(name, version);
    }
    return toArtifactVersion(row);
  }

  async getVersionById(id: string): Promise<ArtifactVersion> {
    const row = this.sql.get<ArtifactVersionRow>('SELECT * FROM artifact_versions WHERE id = ?', id);
    if (row === undefined) {
      throw storeErrors.artifactVersionNotFound(id);
    }
    return toArtifactVersion(row);
  }

  /** In the order asked for; unknown ids are skipped. */
  async getVersionsByIds(ids: string[]): Promise<ArtifactVersion[]> {
    if (ids.length === 0) return [];
    const rows = this.sql.all<ArtifactVersionRow>(
      'SELECT * FROM artifact_versions WHERE id IN (SELECT value FROM json_each(?))',
      json(ids),
    );
    const byId = new Map(rows.map((row) => [row.id, toArtifactVersion(row)]));
    return ids.flatMap((id) => byId.get(id) ?? []);
  }

  /**
   * One summary per artifact name, by name. A summary's tags are the union of its versions' tags,
   * and the tag filter keeps names with at least one version carrying the tag.
   */
  async list(filter: TagFilter = {}): Promise<Page<ArtifactSummary>> {
    const limit = pageLimit(filter.limit);
    const where: string[] = [];
    const params: unknown[] = [];
    if (filter.tag !== undefined) {
      where.push(
        `name IN (SELECT av.name FROM tags t JOIN artifact_versions av ON av.id = t.entity_id
                  WHERE t.entity_kind = 'artifact_version' AND t.tag = ?)`,
      );
      params.push(filter.tag);
    }
    if (filter.cursor !== undefined) {
      where.push('name > ?');
      params.push(...decodeCursor(filter.cursor, ['string']));
    }
    const rows = this.sql.all<{ name: string; latest: number; count: number; updated: string }>(
      `SELECT name, MAX(version) AS latest, COUNT(*) AS count, MAX(created_at) AS updated
       FROM artifact_versions ${whereClause(where)} GROUP BY name ORDER BY name LIMIT ?`,
      ...params,
      limit + 1,
    );
    return toPage(
      rows,
      limit,
      (page) => this.summaries(page),
      (row) => [row.name],
    );
  }

  async listVersions(name: string, filter: TagFilter = {}): Promise<Page<ArtifactVersion>> {
    const limit = pageLimit(filter.limit);
    const where = ['name = ?'];
    const params: unknown[] = [name];
    if (filter.tag !== undefined) {
      where.push(tagCondition('artifact_version', 'id'));
      params.push(filter.tag);
    }
    if (filter.cursor !== undefined) {
      where.push('version < ?');
      params.push(...decodeCursor(filter.cursor, ['number']));
    }
    const rows = this.sql.all<ArtifactVersionRow>(
      `SELECT * FROM artifact_versions ${whereClause(where)} ORDER BY version DESC LIMIT ?`,
      ...params,
      limit + 1,
    );
    return toPage(
      rows,
      limit,
      (page) => page.map(toArtifactVersion),
      (row) => [row.version],
    );
  }

  async consumers(artifactVersionId: string): Promise<StepRun[]> {
    const rows = this.sql.all<StepRunRow>(
      `SELECT s.* FROM step_runs s JOIN step_run_inputs i ON i.step_run_id = s.id
       WHERE i.artifact_version_id = ? ORDER BY s.started_at, s.id`,
      artifactVersionId,
    );
    return hydrateStepRuns(this.sql, rows);
  }

  async addTags(artifactVersionId: string, tags: Tag[]): Promise<void> {
    this.sql.write(() => {
      const row = this.sql.get<{ tags: string }>('SELECT tags FROM artifact_versions WHERE id = ?', artifactVersionId);
      if (row === undefined) {
        throw storeErrors.artifactVersionNotFound(artifactVersionId);
      }
      const merged = uniqueTags([...parseJson<Tag[]>(row.tags), ...tags]);
      this.sql.run('UPDATE artifact_versions SET tags = ? WHERE id = ?', json(merged), artifactVersionId);
      insertTags(this.sql, 'artifact_version', artifactVersionId, tags);
    });
  }

  private summaries(rows: { name: string; latest: number; count: number; updated: string }[]): ArtifactSummary[] {
    const tagRows = this.sql.all<{ name: string; tags: string }>(
      'SELECT name, tags FROM artifact_versions WHERE name IN (SELECT value FROM json_each(?)) ORDER BY name, version',
      json(rows.map((row) => row.name)),
    );
    const tagsByName = new Map<string, Set<Tag>>();
    for (const { name, tags } of tagRows) {
      const set = tagsByName.get(name) ?? new Set<Tag>();
      for (const tag of parseJson<Tag[]>(tags)) set.add(tag);
      tagsByName.set(name, set);
    }
    return rows.map((row) => ({
      name: row.name,
      latestVersion: row.latest,
      versionCount: row.count,
      tags: [...(tagsByName.get(row.name) ?? [])],
      updatedAt: row.updated,
    }));
  }
}
