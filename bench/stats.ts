/**
 * Shared pieces of the benchmarks: the result shape every benchmark returns, small statistics
 * helpers, and the text report.
 */

/** A target a metric should meet: `value <op> target.value`. */
export interface Target {
  op: '<' | '<=' | '>' | '>=';
  value: number;
}

export interface Metric {
  label: string;
  value: number;
  unit: string;
  /** Omitted for informational metrics (baselines, breakdowns). */
  target?: Target;
  /** Whether `value` meets `target`; set by {@link metric} when there is a target. */
  ok?: boolean;
  /** A short remark printed under the table (how it was measured, caveats). */
  note?: string;
}

/** What every benchmark returns: plain data, printable as a table or as JSON. */
export interface BenchResult {
  name: string;
  description: string;
  metrics: Metric[];
  /** Free-form details for the JSON output (raw samples, sizes, ...). */
  details?: Record<string, unknown>;
  durationMs: number;
}

export interface BenchOptions {
  /** Smaller sizes and fewer repetitions, for smoke-testing. */
  quick: boolean;
  /** A scratch directory under `bench/.tmp/`, deleted after the run. */
  tmpDir: string;
  /** Progress messages (stderr), never part of the report. */
  log: (message: string) => void;
}

/** A benchmark: one module exports one or more of these, and `run.ts` lists them. */
export interface Benchmark {
  name: string;
  description: string;
  run(options: BenchOptions): Promise<Omit<BenchResult, 'name' | 'description' | 'durationMs'>>;
}

export function metric(label: string, value: number, unit: string, target?: Target, note?: string): Metric {
  const m: Metric = { label, value, unit };
  if (target) {
    m.target = target;
    m.ok = meets(value, target);
  }
  if (note) m.note = note;
  return m;
}

export function meets(value: number, target: Target): boolean {
  switch (target.op) {
    case '<':
      return value < target.value;
    case '<=':
      return value <= target.value;
    case '>':
      return value > target.value;
    case '>=':
      return value >= target.value;
  }
}

// --- statistics -----------------------------------------------------------------------------

function sorted(values: readonly number[]): number[] {
  if (values.length === 0) throw new Error('No samples.');
  return [...values].sort((a, b) => a - b);
}

/** The p-th percentile (0–100) with linear interpolation between closest ranks. */
export function percentile(values: readonly number[], p: number): number {
  const s = sorted(values);
  const rank = (p / 100) * (s.length - 1);
  const lo = Math.floor(rank);
  const hi = Math.ceil(rank);
  return s[lo]! + (s[hi]! - s[lo]!) * (rank - lo);
}

export function median(values: readonly number[]): number {
  return percentile(values, 50);
}

export function mean(values: readonly number[]): number {
  if (values.length === 0) throw new Error('No samples.');
  return values.reduce((a, b) => a + b, 0) / values.length;
}

export function min(values: readonly number[]): number {
  return sorted(values)[0]!;
}

export function max(values: readonly number[]): number {
  const s = sorted(values);
  return s[s.length - 1]!;
}

/** Times an async function in milliseconds (after a GC, so earlier garbage is not billed to it). */
export async function timeMs<T>(fn: () => Promise<T>): Promise<{ ms: number; value: T }> {
  collectGarbage();
  const start = performance.now();
  const value = await fn();
  return { ms: performance.now() - start, value };
}

/** Runs a full GC when node was started with `--expose-gc` (as `npm run bench` does). */
export function collectGarbage(): void {
  (globalThis as { gc?: () => void }).gc?.();
}

/**
 * Samples `process.memoryUsage().rss` on an interval, to show that streaming work keeps memory
 * flat. `stop()` returns the peak growth over the RSS when sampling started.
 */
export function sampleRss(intervalMs = 20): { stop(): { baseline: number; peak: number; growth: number } } {
  const baseline = process.memoryUsage().rss;
  let peak = baseline;
  const timer = setInterval(() => {
    peak = Math.max(peak, process.memoryUsage().rss);
  }, intervalMs);
  timer.unref();
  return {
    stop() {
      clearInterval(timer);
      peak = Math.max(peak, process.memoryUsage().rss);
      return { baseline, peak, growth: peak - baseline };
    },
  };
}

// --- formatting -----------------------------------------------------------------------------

export const MiB = 1024 * 1024;
export const GiB = 1024 * MiB;

/** A number with about 3 significant digits, grouped thousands. */
export function formatNumber(value: number): string {
  if (!Number.isFinite(value)) return String(value);
  const abs = Math.abs(value);
  const digits = abs >= 100 ? 0 : abs >= 10 ? 1 : abs >= 1 ? 2 : abs >= 0.01 ? 3 : 4;
  return value.toLocaleString('en-US', { minimumFractionDigits: digits, maximumFractionDigits: digits });
}

export function formatBytes(bytes: number): string {
  if (Math.abs(bytes) >= GiB) return `${formatNumber(bytes / GiB)} GiB`;
  if (Math.abs(bytes) >= MiB) return `${formatNumber(bytes / MiB)} MiB`;
  if (Math.abs(bytes) >= 1024) return `${formatNumber(bytes / 1024)} KiB`;
  return `${bytes} B`;
}

export function formatTarget(target: Target | undefined, unit: string): string {
  return target ? `${target.op} ${formatNumber(target.value)} ${unit}`.trimEnd() : '';
}

function pad(text: string, width: number, right = false): string {
  const gap = ' '.repeat(Math.max(0, width - [...text].length));
  return right ? gap + text : text + gap;
}

/** One benchmark as a text table: metric, value, unit, target, ✓/✗, plus its notes. */
export function formatResult(result: BenchResult): string {
  const rows = result.metrics.map((m) => [
    m.label,
    formatNumber(m.value),
    m.unit,
    formatTarget(m.target, m.unit),
    m.ok === undefined ? '' : m.ok ? '✓' : '✗ MISS',
  ]);
  const header = ['metric', 'value', 'unit', 'target', ''];
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => [...r[i]!].length)));
  const line = (cells: string[]) =>
    cells
      .map((c, i) => pad(c, widths[i]!, i === 1))
      .join('  ')
      .trimEnd();
  const out = [
    `== ${result.name} — ${result.description} (${formatNumber(result.durationMs / 1000)} s)`,
    line(header),
    line(widths.map((w) => '-'.repeat(w))),
    ...rows.map(line),
  ];
  const notes = result.metrics.filter((m) => m.note);
  if (notes.length > 0) {
    out.push('');
    for (const m of notes) out.push(`  * ${m.label}: ${m.note}`);
  }
  return out.join('\n');
}

/** A benchmark written as `fn(options) → { metrics: [{ label, value, unit, target?: '< 50 ms' }] }`. */
export function simpleBenchmark(
  name: string,
  description: string,
  fn: (options: {
    quick?: boolean;
  }) => Promise<{ metrics: Array<{ label: string; value: number; unit: string; target?: string; note?: string }> }>,
): Benchmark {
  return {
    name,
    description,
    async run(options) {
      const { metrics } = await fn({ quick: options.quick });
      return {
        metrics: metrics.map((m) =>
          metric(m.label, m.value, m.unit, m.target ? parseTarget(m.target) : undefined, m.note),
        ),
      };
    },
  };
}

/** `'< 50 ms'`, `'>= 0.8 ×'` → `{ op, value }` (the unit after the number is ignored). */
export function parseTarget(text: string): Target {
  const match = /^\s*(<=|>=|<|>)\s*([\d.,]+)/.exec(text);
  if (!match) throw new Error(`Unreadable benchmark target ${JSON.stringify(text)}: write it like "< 50 ms".`);
  return { op: match[1] as Target['op'], value: Number(match[2]!.replace(/,/g, '')) };
}
