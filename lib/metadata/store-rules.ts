import { ValidationError } from '../errors.ts';
import { MODEL_STAGES, type Tag } from './types.ts';

/**
 * Input rules every MetadataStore adapter applies the same way, so the conformance suite holds
 * SQLite and DynamoDB to one behaviour.
 */

export const DEFAULT_PAGE_LIMIT = 50;
export const MAX_PAGE_LIMIT = 1000;

/** Labels a version name or alias cannot take: they already mean something in a version reference. */
export const RESERVED_LABELS: readonly string[] = [...MODEL_STAGES, 'latest'];

export function pageLimit(limit: number | undefined): number {
  if (limit === undefined) return DEFAULT_PAGE_LIMIT;
  if (!Number.isInteger(limit) || limit < 1) {
    throw new ValidationError(`Page limit must be a positive integer, got ${limit}`, { context: { limit } });
  }
  return Math.min(limit, MAX_PAGE_LIMIT);
}

export function uniqueTags(tags: readonly Tag[]): Tag[] {
  return [...new Set(tags)];
}

/** Parses an ISO-8601 timestamp filter and returns it normalized to UTC. */
export function normalizeTimestamp(value: string, field: string): string {
  const time = Date.parse(value);
  if (Number.isNaN(time)) {
    throw new ValidationError(`"${field}" must be an ISO-8601 timestamp, got "${value}"`, {
      context: { [field]: value },
    });
  }
  return new Date(time).toISOString();
}

export function assertVersionLabel(model: string, what: 'alias' | 'version name', label: string): void {
  if (label === '' || RESERVED_LABELS.includes(label) || /^\d+$/.test(label)) {
    throw new ValidationError(
      `Model "${model}": "${label}" cannot be a ${what}; stages, "latest", numbers and "" would be ambiguous in a version reference`,
      { context: { model, [what === 'alias' ? 'alias' : 'name']: label } },
    );
  }
}
