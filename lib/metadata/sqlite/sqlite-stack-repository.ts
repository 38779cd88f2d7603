import { nowIso } from '../../util/ids.ts';
import type { StackRepository } from '../metadata-store.ts';
import { storeErrors } from '../store-errors.ts';
import { pageLimit, uniqueTags } from '../store-rules.ts';
import type { Page, StackRecord, TagFilter } from '../types.ts';
import { type StackRow, toStack } from './rows.ts';
import { decodeCursor, insertTags, json, type Sql, tagCondition, toPage, whereClause } from './sql.ts';

export class SqliteStackRepository implements StackRepository {
  constructor(private readonly sql: Sql) {}

  async put(stack: Omit<StackRecord, 'createdAt' | 'updatedAt'>): Promise<StackRecord> {
    return this.sql.write(() => {
      const now = nowIso();
      const tags = uniqueTags(stack.tags);
      this.sql.run(
        `INSERT INTO stacks (name, components, description, tags, created_at, updated_at)
         VALUES (@name, @components, @description, @tags, @now, @now)
         ON CONFLICT (name) DO UPDATE SET components = excluded.components, description = excluded.description,
           tags = excluded.tags, updated_at = excluded.updated_at`,
        {
          name: stack.name,
          components: json(stack.components),
          description: stack.description ?? null,
          tags: json(tags),
          now,
        },
      );
      this.sql.run(`DELETE FROM tags WHERE entity_kind = 'stack' AND entity_id = ?`, stack.name);
      insertTags(this.sql, 'stack', stack.name, tags);
      return toStack(this.sql.get<StackRow>('SELECT * FROM stacks WHERE name = ?', stack.name)!);
    });
  }

  async get(name: string): Promise<StackRecord> {
    const stack = await this.find(name);
    if (stack === undefined) throw storeErrors.stackNotFound(name);
    return stack;
  }

  async find(name: string): Promise<StackRecord | undefined> {
    const row = this.sql.get<StackRow>('SELECT * FROM stacks WHERE name = ?', name);
    return row === undefined ? undefined : toStack(row);
  }

  async list(filter: TagFilter = {}): Promise<Page<StackRecord>> {
    const limit = pageLimit(filter.limit);
    const where: string[] = [];
    const params: unknown[] = [];
    if (filter.tag !== undefined) {
      where.push(tagCondition('stack', 'name'));
      params.push(filter.tag);
    }
    if (filter.cursor !== undefined) {
      where.push('name > ?');
      params.push(...decodeCursor(filter.cursor, ['string']));
    }
    const rows = this.sql.all<StackRow>(
      `SELECT * FROM stacks ${whereClause(where)} ORDER BY name LIMIT ?`,
      ...params,
      limit + 1,
    );
    return toPage(
      rows,
      limit,
      (page) => page.map(toStack),
      (row) => [row.name],
    );
  }

  async delete(name: string): Promise<void> {
    this.sql.write(() => {
      const result = this.sql.run('DELETE FROM stacks WHERE name = ?', name);
      if (result.changes === 0) throw storeErrors.stackNotFound(name);
      this.sql.run(`DELETE FROM tags WHERE entity_kind = 'stack' AND entity_id = ?`, name);
    });
  }
}
