import { monotonicFactory } from 'ulid';

const nextUlid = monotonicFactory();

/** A new time-sortable id with a short prefix saying what it names (`run_…`, `srun_…`, `av_…`). */
export function newId(prefix: 'run' | 'srun' | 'av' | 'mv' | 'sc'): string {
  return `${prefix}_${nextUlid().toLowerCase()}`;
}

export function nowIso(): string {
  return new Date().toISOString();
}
