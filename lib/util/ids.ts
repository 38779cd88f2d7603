import { randomFillSync } from 'node:crypto';
import { monotonicFactory } from 'ulid';

// ulid's default source asks the CSPRNG for one byte per character (16 calls per id); ids are
// made on every step's hot path, so draw from a buffer refilled 4 KiB at a time instead.
const pool = new Uint8Array(4096);
let offset = pool.length;
function pooledRandom(): number {
  if (offset >= pool.length) {
    randomFillSync(pool);
    offset = 0;
  }
  return pool[offset++]! / 256;
}

const nextUlid = monotonicFactory(pooledRandom);

/** A new time-sortable id with a short prefix saying what it names (`run_…`, `srun_…`, `av_…`). */
export function newId(prefix: 'run' | 'srun' | 'av' | 'mv' | 'sc'): string {
  return `${prefix}_${nextUlid().toLowerCase()}`;
}

export function nowIso(): string {
  return new Date().toISOString();
}
