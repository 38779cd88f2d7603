import type { ArtifactVersion, Run, StepExplanation, StepRun } from './api.ts';
import type { GraphEdge, GraphNode } from './components/Graph.tsx';
import { formatDuration } from './format.ts';

/** One node of a run's DAG: a step of the pipeline, its fan-out items collapsed into it. */
export interface DagStep {
  id: string;
  step: string;
  upstream: string[];
  /** The step runs of this node: one, or one per fan-out item (`id[0]`, `id[1]`, …). */
  runs: StepRun[];
  fanOut: boolean;
  status: string;
  durationMs: number | undefined;
}

const baseId = (stepId: string) => stepId.replace(/\[\d+\]$/, '');

interface ConfigStep {
  step?: string;
  upstream?: string[];
  map?: unknown;
}

/**
 * The DAG as the pipeline wired it: nodes and upstream edges from the run's configuration snapshot
 * (`config.steps`), so steps that never ran still show (`not-run`); runs without a snapshot fall
 * back to the inputs each step run recorded in its cache key.
 */
export function buildDag(run: Run, steps: StepRun[]): DagStep[] {
  const byNode = new Map<string, StepRun[]>();
  for (const s of steps) {
    const id = baseId(s.stepId);
    byNode.set(id, [...(byNode.get(id) ?? []), s]);
  }
  const config = (run.config.steps ?? {}) as Record<string, ConfigStep>;
  const ids = Object.keys(config).length > 0 ? Object.keys(config) : [...byNode.keys()];
  return ids.map((id) => {
    const runs = (byNode.get(id) ?? []).sort((a, b) => a.stepId.localeCompare(b.stepId, 'en', { numeric: true }));
    const declared = config[id];
    const upstream = declared?.upstream ?? upstreamFromCacheKeys(runs);
    const fanOut = declared?.map !== undefined || runs.some((r) => r.stepId !== id);
    const durations = runs.map((r) => r.durationMs).filter((d): d is number => d !== undefined);
    return {
      id,
      step: declared?.step ?? runs[0]?.stepName ?? id,
      upstream: [...new Set(upstream.map(baseId))],
      runs,
      fanOut,
      status: aggregateStatus(runs, run),
      durationMs: durations.length ? Math.max(...durations) : undefined,
    };
  });
}

function upstreamFromCacheKeys(runs: StepRun[]): string[] {
  return runs.flatMap((r) => {
    const record = r.metadata['stackline.cacheKey'] as { inputs?: Record<string, { from?: string }> } | undefined;
    return Object.values(record?.inputs ?? {})
      .map((i) => i.from)
      .filter((f): f is string => typeof f === 'string' && f !== 'unknown');
  });
}

/** A fan-out is as bad as its worst item; all items cached → cached. */
function aggregateStatus(runs: StepRun[], run: Run): string {
  if (runs.length === 0) return run.status === 'running' || run.status === 'pending' ? 'pending' : 'not-run';
  for (const s of ['failed', 'running', 'cancelled'] as const) if (runs.some((r) => r.status === s)) return s;
  return runs.every((r) => r.status === 'cached') ? 'cached' : 'completed';
}

const VERDICTS: Record<string, string> = {
  hit: 'cache hit',
  changed: 'cache miss: changed',
  'cache-disabled': 'cache disabled',
  'first-run': 'cache miss: first run',
  'not-reusable': 'cache miss: not reusable',
};

export function toGraph(
  dag: DagStep[],
  explanations: Map<string, StepExplanation>,
  selected: string | undefined,
): { nodes: GraphNode[]; edges: GraphEdge[] } {
  const nodes = dag.map((s): GraphNode => {
    const lines = [`${s.status}${s.durationMs === undefined ? '' : ` · ${formatDuration(s.durationMs)}`}`];
    if (s.fanOut) lines.push(`fan-out × ${s.runs.length} items`);
    const verdicts = [...new Set(s.runs.map((r) => explanations.get(r.id)?.verdict).filter(Boolean))];
    if (verdicts.length === 1) lines.push(VERDICTS[verdicts[0]!]!);
    else if (verdicts.length > 1) lines.push(`cache: ${verdicts.length} reasons`);
    return {
      id: s.id,
      title: s.id === s.step ? s.id : `${s.id} (${s.step})`,
      lines,
      className: `status-${s.status}`,
      selected: s.id === selected,
    };
  });
  const edges = dag.flatMap((s) => s.upstream.map((u) => ({ from: u, to: s.id })));
  return { nodes, edges };
}

export function versionLabel(v: ArtifactVersion | undefined, id: string): string {
  return v ? `${v.name}@v${v.version}` : id;
}
