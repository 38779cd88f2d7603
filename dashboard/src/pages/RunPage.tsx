import { useMemo, useState } from 'react';
import {
  type ArtifactVersion,
  api,
  enc,
  type RunArtifacts,
  type RunDetail,
  type RunExplanation,
  type StepExplanation,
  type StepRun,
} from '../api.ts';
import { KeyValues, Show, Status, Tags } from '../components/common.tsx';
import { Graph } from '../components/Graph.tsx';
import { buildDag, type DagStep, toGraph, versionLabel } from '../dag.ts';
import { formatDuration, formatTime, runDuration } from '../format.ts';
import { useApi } from '../hooks.ts';

const POLL_MS = 2000;
const live = (d: RunDetail) => (d.run.status === 'running' || d.run.status === 'pending' ? POLL_MS : undefined);

/** A run: its DAG coloured by status, and the selected step's details. */
export function RunPage({ runId }: { runId: string }) {
  const detail = useApi(`run:${runId}`, () => api<RunDetail>(`runs/${enc(runId)}`), live);
  const explain = useApi(`explain:${runId}:${detail.data?.steps.length ?? 0}:${detail.data?.run.status}`, () =>
    api<RunExplanation>(`runs/${enc(runId)}/explain`),
  );
  const artifacts = useApi(`artifacts:${runId}:${detail.data?.steps.length ?? 0}:${detail.data?.run.status}`, () =>
    api<RunArtifacts>(`runs/${enc(runId)}/artifacts`),
  );
  const [selected, setSelected] = useState<string>();

  const dag = useMemo(() => (detail.data ? buildDag(detail.data.run, detail.data.steps) : []), [detail.data]);
  const explanations = useMemo(() => new Map((explain.data?.items ?? []).map((e) => [e.stepRunId, e])), [explain.data]);
  const versions = useMemo(() => new Map((artifacts.data?.items ?? []).map((v) => [v.id, v])), [artifacts.data]);
  const graph = useMemo(() => toGraph(dag, explanations, selected), [dag, explanations, selected]);
  const step = dag.find((s) => s.id === selected);

  return (
    <Show loaded={detail}>
      {({ run }) => (
        <section>
          <h1>
            Run <code>{run.id}</code> <Status status={run.status} />
          </h1>
          <p className="summary">
            pipeline <b>{run.pipeline}</b> · stack {run.stack} · by {run.createdBy} · started{' '}
            {formatTime(run.startedAt)} · {formatDuration(runDuration(run))} · {dag.length} steps{' '}
            <Tags tags={run.tags} />
          </p>
          {run.error && (
            <p className="error">
              {run.error.type}: {run.error.message}
            </p>
          )}
          <div className="run-layout">
            <div className="dag" data-testid="dag">
              <Graph label={`DAG of run ${run.id}`} nodes={graph.nodes} edges={graph.edges} onSelect={setSelected} />
            </div>
            <aside className="panel" data-testid="step-panel">
              {step ? (
                <StepPanel step={step} runId={run.id} explanations={explanations} versions={versions} />
              ) : (
                <p className="muted">Select a step to see its parameters, inputs, outputs, logs and cache decision.</p>
              )}
            </aside>
          </div>
        </section>
      )}
    </Show>
  );
}

function StepPanel(props: {
  step: DagStep;
  runId: string;
  explanations: Map<string, StepExplanation>;
  versions: Map<string, ArtifactVersion>;
}) {
  const { step } = props;
  const [item, setItem] = useState(0);
  const stepRun: StepRun | undefined = step.runs[Math.min(item, step.runs.length - 1)];
  return (
    <div>
      <h2>
        {step.id} <Status status={step.status} />
      </h2>
      {step.fanOut && (
        <label>
          Item{' '}
          <select value={item} onChange={(e) => setItem(Number(e.target.value))}>
            {step.runs.map((r, i) => (
              <option key={r.id} value={i}>
                {r.stepId} ({r.status})
              </option>
            ))}
          </select>
        </label>
      )}
      {!stepRun ? (
        <p className="muted">This step did not run.</p>
      ) : (
        <StepRunDetails
          stepRun={stepRun}
          runId={props.runId}
          explanation={props.explanations.get(stepRun.id)}
          versions={props.versions}
        />
      )}
    </div>
  );
}

function StepRunDetails(props: {
  stepRun: StepRun;
  runId: string;
  explanation: StepExplanation | undefined;
  versions: Map<string, ArtifactVersion>;
}) {
  const { stepRun: s, explanation } = props;
  const logs = useApi(`logs:${s.id}:${s.status}`, () =>
    api<{ logs: string[] }>(`runs/${enc(props.runId)}/steps/${enc(s.id)}/logs`),
  );
  const artifactLinks = (refs: Record<string, string>) => {
    const entries = Object.entries(refs);
    if (entries.length === 0) return <p className="muted">none</p>;
    return (
      <ul>
        {entries.map(([name, id]) => {
          const v = props.versions.get(id);
          return (
            <li key={name}>
              {name}:{' '}
              {v ? <a href={`#/artifacts/${enc(v.name)}/${v.version}`}>{versionLabel(v, id)}</a> : <code>{id}</code>}
            </li>
          );
        })}
      </ul>
    );
  };
  return (
    <div className="step-details">
      <p>
        <Status status={s.status} /> {formatDuration(s.durationMs)} · attempts {s.attempts} · started{' '}
        {formatTime(s.startedAt)}
      </p>
      <h3>Cache</h3>
      <p className="cache-reason" data-testid="cache-reason">
        {explanation ? explanation.summary : 'no explanation recorded'}
      </p>
      {explanation && explanation.changes.length > 0 && (
        <ul className="changes">
          {explanation.changes.map((c) => (
            <li key={`${c.kind}:${c.name}`}>
              {c.kind} <b>{c.name}</b>
              {c.from ? ` (from ${c.from})` : ''}: {c.before ?? '(none)'} → {c.after ?? '(none)'}
            </li>
          ))}
        </ul>
      )}
      <h3>Parameters</h3>
      <KeyValues values={s.parameters} />
      <h3>Inputs</h3>
      {artifactLinks(s.inputs)}
      <h3>Outputs</h3>
      {artifactLinks(s.outputs)}
      {s.error && (
        <>
          <h3>Error</h3>
          <pre className="error">
            {s.error.type}: {s.error.message}
            {s.error.stack ? `\n${s.error.stack}` : ''}
          </pre>
        </>
      )}
      <h3>Logs</h3>
      <Show loaded={logs}>
        {(l) => (l.logs.length ? <pre className="logs">{l.logs.join('\n')}</pre> : <p className="muted">none</p>)}
      </Show>
    </div>
  );
}
