import { useState } from 'react';
import {
  type ArtifactPage,
  type ArtifactPreview,
  type ArtifactVersion,
  type ArtifactVersionPage,
  api,
  type DownloadLink,
  enc,
  type Lineage,
  type ModelVersion,
  query,
  type StepRun,
} from '../api.ts';
import { KeyValues, Show, Status, Tags } from '../components/common.tsx';
import { Graph, type GraphEdge, type GraphNode } from '../components/Graph.tsx';
import { formatBytes, formatTime, formatValue } from '../format.ts';
import { useApi } from '../hooks.ts';

/** Upstream versions walked for the lineage graph, at most. */
const MAX_LINEAGE_VERSIONS = 40;

/** Artifacts by name; one artifact's versions; one version's lineage, metadata and preview. */
export function ArtifactsPage({ name, version }: { name?: string; version?: number }) {
  const [tag, setTag] = useState('');
  const artifacts = useApi(`artifacts${tag}`, () => api<ArtifactPage>(`artifacts${query({ tag, limit: 1000 })}`));
  return (
    <section>
      <h1>Artifacts</h1>
      <div className="columns">
        <nav className="sidebar">
          <input placeholder="tag filter key:value" value={tag} onChange={(e) => setTag(e.target.value)} />
          <Show loaded={artifacts}>
            {(page) => (
              <ul className="names">
                {page.items.map((a) => (
                  <li key={a.name} className={a.name === name ? 'active' : ''}>
                    <a href={`#/artifacts/${enc(a.name)}`}>{a.name}</a>{' '}
                    <span className="muted">v{a.latestVersion}</span>
                  </li>
                ))}
              </ul>
            )}
          </Show>
        </nav>
        <div className="main">
          {name ? <ArtifactVersions name={name} version={version} /> : <p className="muted">Pick an artifact.</p>}
        </div>
      </div>
    </section>
  );
}

function ArtifactVersions({ name, version }: { name: string; version: number | undefined }) {
  const versions = useApi(`versions:${name}`, () =>
    api<ArtifactVersionPage>(`artifacts/${enc(name)}/versions?limit=1000`),
  );
  return (
    <Show loaded={versions}>
      {(page) => {
        const chosen = version ?? page.items[0]?.version;
        return (
          <>
            <h2>{name}</h2>
            <table className="list">
              <thead>
                <tr>
                  <th>Version</th>
                  <th>Created</th>
                  <th>Size</th>
                  <th>Materializer</th>
                  <th>Tags</th>
                </tr>
              </thead>
              <tbody>
                {page.items.map((v) => (
                  <tr key={v.id} className={v.version === chosen ? 'active' : ''}>
                    <td>
                      <a href={`#/artifacts/${enc(name)}/${v.version}`}>v{v.version}</a>
                    </td>
                    <td>{formatTime(v.createdAt)}</td>
                    <td>{formatBytes(v.size)}</td>
                    <td>{v.materializer}</td>
                    <td>
                      <Tags tags={v.tags} />
                    </td>
                  </tr>
                ))}
              </tbody>
            </table>
            {chosen !== undefined && <VersionDetails key={`${name}@${chosen}`} name={name} version={chosen} />}
          </>
        );
      }}
    </Show>
  );
}

function VersionDetails({ name, version }: { name: string; version: number }) {
  const path = `artifacts/${enc(name)}/versions/${version}`;
  const lineage = useApi(`lineage:${path}`, () => walkLineage(name, version));
  const preview = useApi(`preview:${path}`, () => api<ArtifactPreview>(`${path}/preview`));
  const link = useApi(`download:${path}`, () => api<DownloadLink>(`${path}/download`));
  return (
    <Show loaded={lineage}>
      {(walk) => {
        const v = walk.root.version;
        return (
          <div className="version">
            <h2>
              {v.name}@v{v.version}
            </h2>
            <p className="summary">
              {formatBytes(v.size)} · <code>{v.contentHash}</code> · {v.materializer} ({v.dataType}) ·{' '}
              {link.data ? (
                <a href={link.data.url} download data-testid="download">
                  download
                </a>
              ) : (
                'download link…'
              )}
            </p>
            <h3>Lineage</h3>
            <div className="lineage" data-testid="lineage">
              <LineageGraph walk={walk} />
            </div>
            <div className="columns">
              <div>
                <h3>Metadata</h3>
                <KeyValues values={v.metadata} />
                <h3>Tags</h3>
                {v.tags.length ? <Tags tags={v.tags} /> : <p className="muted">none</p>}
              </div>
              <div className="grow">
                <h3>Preview</h3>
                <Show loaded={preview}>{(p) => <Preview preview={p} />}</Show>
              </div>
            </div>
          </div>
        );
      }}
    </Show>
  );
}

function Preview({ preview }: { preview: ArtifactPreview }) {
  switch (preview.kind) {
    case 'json':
      return <pre className="preview">{JSON.stringify(preview.value, null, 2)}</pre>;
    case 'text':
      return (
        <pre className="preview">
          {preview.text}
          {preview.truncated ? '\n…' : ''}
        </pre>
      );
    case 'table':
      return (
        <div className="preview">
          <table className="list">
            <thead>
              <tr>
                {preview.columns.map((c) => (
                  <th key={c}>{c}</th>
                ))}
              </tr>
            </thead>
            <tbody>
              {preview.rows.map((row, i) => (
                // biome-ignore lint/suspicious/noArrayIndexKey: rows have no identity of their own
                <tr key={i}>
                  {row.map((cell, j) => (
                    // biome-ignore lint/suspicious/noArrayIndexKey: columns are positional
                    <td key={j}>{formatValue(cell)}</td>
                  ))}
                </tr>
              ))}
            </tbody>
          </table>
          {preview.totalRows > preview.rows.length && (
            <p className="muted">
              first {preview.rows.length} of {preview.totalRows} rows
            </p>
          )}
        </div>
      );
    case 'binary':
      return (
        <p>
          {preview.materializer}: {formatBytes(preview.size)}, <code>{preview.contentHash}</code>
        </p>
      );
  }
}

interface LineageWalk {
  root: Lineage;
  /** Every lineage read, the root's first: upstream versions, breadth first. */
  all: Lineage[];
  /** Model versions a producer read (`{ model, version: 'production' }` steps) and their model artifact. */
  models: Array<{ stepRunId: string; version: ModelVersion; artifact: ArtifactVersion | undefined }>;
}

/** `iris_classifier:2` from a step run's cache-key record: the model version it read. */
function modelReadBy(step: StepRun): { model: string; number: number } | undefined {
  const record = step.metadata['stackline.cacheKey'] as { model?: unknown } | undefined;
  const match = typeof record?.model === 'string' ? /^(.+):(\d+)$/.exec(record.model) : null;
  return match ? { model: match[1]!, number: Number(match[2]) } : undefined;
}

/**
 * The version's lineage and its inputs', back to versions nothing produced (or the walk's limit).
 * A step that read a model version (inference) continues through that version's `model` artifact,
 * so predictions lead back to the training data.
 */
async function walkLineage(name: string, version: number): Promise<LineageWalk> {
  const read = (n: string, v: number) => api<Lineage>(`artifacts/${enc(n)}/versions/${v}/lineage`);
  const root = await read(name, version);
  const all = [root];
  const models: LineageWalk['models'] = [];
  const seen = new Set([root.version.id]);
  let frontier = [root];
  while (frontier.length && all.length < MAX_LINEAGE_VERSIONS) {
    const next = frontier.flatMap((l) => l.producerInputs).filter((v) => !seen.has(v.id) && seen.add(v.id));
    for (const l of frontier) {
      const used = l.producer && modelReadBy(l.producer);
      if (!l.producer || !used) continue;
      const mv = await api<ModelVersion>(`models/${enc(used.model)}/versions/${used.number}`);
      const link = mv.artifacts.find((a) => a.role === 'model');
      const artifact = link
        ? (await api<ArtifactVersionPage>(`artifacts/${enc(link.artifactName)}/versions?limit=1000`)).items.find(
            (v) => v.id === link.artifactVersionId,
          )
        : undefined;
      models.push({ stepRunId: l.producer.id, version: mv, artifact });
      if (artifact && !seen.has(artifact.id) && seen.add(artifact.id)) next.push(artifact);
    }
    const room = next.slice(0, MAX_LINEAGE_VERSIONS - all.length);
    frontier = await Promise.all(room.map((v) => read(v.name, v.version)));
    all.push(...frontier);
  }
  return { root, all, models };
}

function LineageGraph({ walk }: { walk: LineageWalk }) {
  const nodes = new Map<string, GraphNode>();
  const edges: GraphEdge[] = [];
  const artifactNode = (v: ArtifactVersion, root = false) =>
    nodes.set(`a:${v.id}`, {
      id: `a:${v.id}`,
      title: `${v.name}@v${v.version}`,
      lines: [formatBytes(v.size)],
      className: root ? 'artifact root' : 'artifact',
    });
  const stepNode = (s: StepRun) =>
    nodes.set(`s:${s.id}`, {
      id: `s:${s.id}`,
      title: `step ${s.stepId}`,
      lines: [`${s.status} · run ${s.runId.slice(-8)}`],
      className: `step status-${s.status}`,
    });
  for (const l of walk.all) {
    artifactNode(l.version, l === walk.root);
    if (!l.producer) continue;
    stepNode(l.producer);
    edges.push({ from: `s:${l.producer.id}`, to: `a:${l.version.id}` });
    for (const input of l.producerInputs) {
      if (!nodes.has(`a:${input.id}`)) artifactNode(input);
      edges.push({ from: `a:${input.id}`, to: `s:${l.producer.id}` });
    }
  }
  for (const m of walk.models) {
    const id = `m:${m.version.id}`;
    nodes.set(id, {
      id,
      title: `model ${m.version.model} v${m.version.number}`,
      lines: [m.version.stage ?? 'no stage'],
      className: 'model',
    });
    edges.push({ from: id, to: `s:${m.stepRunId}` });
    if (m.artifact) edges.push({ from: `a:${m.artifact.id}`, to: id });
  }
  for (const c of walk.root.consumers) {
    stepNode(c);
    edges.push({ from: `a:${walk.root.version.id}`, to: `s:${c.id}` });
  }
  const onSelect = (id: string) => {
    const l = walk.all.find((x) => `a:${x.version.id}` === id);
    if (l) window.location.hash = `#/artifacts/${enc(l.version.name)}/${l.version.version}`;
    const s = [...walk.all.map((x) => x.producer), ...walk.root.consumers].find((x) => x && `s:${x.id}` === id);
    if (s) window.location.hash = `#/runs/${enc(s.runId)}`;
    const m = walk.models.find((x) => `m:${x.version.id}` === id);
    if (m) window.location.hash = `#/models/${enc(m.version.model)}`;
  };
  const list = [...nodes.values()];
  return (
    <>
      <Graph label="lineage" nodes={list} edges={edges} onSelect={onSelect} />
      <p className="muted">
        producer: {walk.root.producer ? <Status status={walk.root.producer.status} /> : 'none (saved outside a run)'}
        {walk.root.producer && ` step ${walk.root.producer.stepId}`} · consumers: {walk.root.consumers.length}
      </p>
    </>
  );
}
