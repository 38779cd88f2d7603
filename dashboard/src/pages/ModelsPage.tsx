import { useState } from 'react';
import { Bar, BarChart, CartesianGrid, Legend, Tooltip, XAxis, YAxis } from 'recharts';
import {
  ApiError,
  api,
  type Comparison,
  enc,
  type ModelDetail,
  type ModelPage,
  type ModelVersion,
  type ModelVersionPage,
  type StageChangePage,
  type StageChanges,
  type WhoAmI,
} from '../api.ts';
import { Show, Tags } from '../components/common.tsx';
import { formatTime, formatValue } from '../format.ts';
import { useApi } from '../hooks.ts';

const COLOURS = ['#2563eb', '#16a34a', '#d97706', '#9333ea', '#dc2626', '#0891b2'];

/** Models; one model's versions, stages, aliases, history, a metric comparison and promotion. */
export function ModelsPage({ name }: { name?: string }) {
  const models = useApi('models', () => api<ModelPage>('models?limit=1000'));
  return (
    <section>
      <h1>Models</h1>
      <div className="columns">
        <nav className="sidebar">
          <Show loaded={models}>
            {(page) => (
              <ul className="names">
                {page.items.map((m) => (
                  <li key={m.name} className={m.name === name ? 'active' : ''}>
                    <a href={`#/models/${enc(m.name)}`}>{m.name}</a>{' '}
                    <span className="muted">{m.latestVersion} versions</span>
                  </li>
                ))}
              </ul>
            )}
          </Show>
        </nav>
        <div className="main">{name ? <Model key={name} name={name} /> : <p className="muted">Pick a model.</p>}</div>
      </div>
    </section>
  );
}

const metricsOf = (v: ModelVersion) =>
  Object.entries(v.metadata).filter((e): e is [string, number] => typeof e[1] === 'number');

function Model({ name }: { name: string }) {
  // Everything of the model re-reads together after a promotion: `revision` is in every key.
  const [revision, setRevision] = useState(0);
  const base = `models/${enc(name)}`;
  const me = useApi('whoami', () => api<WhoAmI>('whoami'));
  const model = useApi(`model:${name}:${revision}`, () => api<ModelDetail>(base));
  const versions = useApi(`versions:${name}:${revision}`, () => api<ModelVersionPage>(`${base}/versions?limit=1000`));
  const history = useApi(`history:${name}:${revision}`, () => api<StageChangePage>(`${base}/history?limit=1000`));
  const [chosen, setChosen] = useState<number[]>([]);
  const [message, setMessage] = useState<{ ok: boolean; text: string }>();
  const mayPromote = me.data?.role === 'release-manager';

  const promote = async (v: ModelVersion) => {
    setMessage(undefined);
    try {
      const holder = model.data?.stages.production ?? null;
      const result = await api<StageChanges>(`${base}/versions/${v.number}/production`, {
        method: 'POST',
        body: { expectedHolder: holder, reason: `promoted from the dashboard by ${me.data?.actor ?? 'unknown'}` },
      });
      setMessage({ ok: true, text: `v${v.number} is in production (${result.changes.length} stage changes).` });
    } catch (error) {
      const text = error instanceof ApiError ? `${error.status}: ${error.message}` : String(error);
      setMessage({ ok: false, text });
    }
    setRevision((r) => r + 1);
  };
  const toggle = (n: number) => setChosen((c) => (c.includes(n) ? c.filter((x) => x !== n) : [...c, n].sort()));

  return (
    <Show loaded={model}>
      {(m) => (
        <div>
          <h2>{m.name}</h2>
          <p className="summary" data-testid="holders">
            production:{' '}
            <b data-testid="production-holder">{m.stages.production ? `v${m.stages.production}` : 'none'}</b> · staging:{' '}
            <b>{m.stages.staging ? `v${m.stages.staging}` : 'none'}</b> · {m.description ?? ''} <Tags tags={m.tags} />
          </p>
          <p className="muted" data-testid="caller">
            {me.data
              ? `signed in as ${me.data.actor} (${me.data.role})${mayPromote ? '' : ': only release managers may promote to production'}`
              : ''}
          </p>
          {message && (
            <p className={message.ok ? 'ok' : 'error'} role="status">
              {message.text}
            </p>
          )}
          <Show loaded={versions}>
            {(page) => (
              <table className="list" data-testid="versions">
                <thead>
                  <tr>
                    <th>Compare</th>
                    <th>Version</th>
                    <th>Stage</th>
                    <th>Aliases</th>
                    <th>Metrics</th>
                    <th>Created</th>
                    <th />
                  </tr>
                </thead>
                <tbody>
                  {page.items.map((v) => (
                    <tr key={v.id} data-version={v.number}>
                      <td>
                        <input
                          type="checkbox"
                          aria-label={`compare v${v.number}`}
                          checked={chosen.includes(v.number)}
                          onChange={() => toggle(v.number)}
                        />
                      </td>
                      <td>
                        v{v.number}
                        {v.name ? ` (${v.name})` : ''}
                      </td>
                      <td>{v.stage ? <span className={`stage stage-${v.stage}`}>{v.stage}</span> : '–'}</td>
                      <td>
                        <Tags tags={v.aliases} />
                      </td>
                      <td className="metrics">
                        {metricsOf(v)
                          .map(([k, x]) => `${k} ${formatValue(x)}`)
                          .join(' · ')}
                      </td>
                      <td>{formatTime(v.createdAt)}</td>
                      <td>
                        {v.stage !== 'production' && (
                          <button
                            type="button"
                            data-testid={`promote-${v.number}`}
                            disabled={!mayPromote}
                            title={
                              mayPromote ? 'Promote to production' : 'Only release managers may promote to production'
                            }
                            onClick={() => promote(v)}
                          >
                            Promote to production
                          </button>
                        )}
                      </td>
                    </tr>
                  ))}
                </tbody>
              </table>
            )}
          </Show>
          {chosen.length >= 2 && <Compare base={base} versions={chosen} revision={revision} />}
          {chosen.length < 2 && <p className="muted">Tick two or more versions to compare their metrics.</p>}
          <h3>Stage history</h3>
          <Show loaded={history}>
            {(h) => (
              <table className="list" data-testid="history">
                <thead>
                  <tr>
                    <th>When</th>
                    <th>Who</th>
                    <th>Version</th>
                    <th>From</th>
                    <th>To</th>
                    <th>Why</th>
                  </tr>
                </thead>
                <tbody>
                  {[...h.items].reverse().map((c) => (
                    <tr key={c.id}>
                      <td>{formatTime(c.at)}</td>
                      <td>{c.actor}</td>
                      <td>v{c.versionNumber}</td>
                      <td>
                        {c.kind === 'stage' ? (c.fromStage ?? '–') : c.previousVersion ? `v${c.previousVersion}` : '–'}
                      </td>
                      <td>
                        {c.kind === 'stage'
                          ? c.toStage
                          : c.kind === 'alias'
                            ? `alias ${c.alias}`
                            : `alias ${c.alias} removed`}
                      </td>
                      <td>{c.reason ?? ''}</td>
                    </tr>
                  ))}
                </tbody>
              </table>
            )}
          </Show>
        </div>
      )}
    </Show>
  );
}

function Compare({ base, versions, revision }: { base: string; versions: number[]; revision: number }) {
  const comparison = useApi(`compare:${base}:${versions.join(',')}:${revision}`, () =>
    api<Comparison>(`${base}/compare?versions=${versions.join(',')}`),
  );
  return (
    <Show loaded={comparison}>
      {(c) => {
        // Charted: the numbers every compared version has and that differ (metrics, not counts they share).
        const numeric = c.rows.filter((r) => r.differs && r.values.every((v) => typeof v === 'number'));
        const data = numeric.map((r) => ({
          metric: r.key,
          ...Object.fromEntries(
            c.versions.map((v, i) => [`v${v.number}`, typeof r.values[i] === 'number' ? r.values[i] : null]),
          ),
        }));
        return (
          <div data-testid="comparison">
            <h3>Side by side</h3>
            <table className="list">
              <thead>
                <tr>
                  <th>key</th>
                  {c.versions.map((v) => (
                    <th key={v.number}>
                      v{v.number} {v.stage ? `(${v.stage})` : ''}
                    </th>
                  ))}
                </tr>
              </thead>
              <tbody>
                {c.rows.map((r) => (
                  <tr key={r.key} className={r.differs ? 'differs' : ''}>
                    <th>{r.key}</th>
                    {r.values.map((v, i) => (
                      // biome-ignore lint/suspicious/noArrayIndexKey: one cell per compared version
                      <td key={i}>{formatValue(v)}</td>
                    ))}
                  </tr>
                ))}
              </tbody>
            </table>
            {data.length > 0 && (
              <BarChart width={640} height={260} data={data} className="chart">
                <CartesianGrid strokeDasharray="3 3" />
                <XAxis dataKey="metric" />
                <YAxis />
                <Tooltip />
                <Legend />
                {c.versions.map((v, i) => (
                  <Bar
                    key={v.number}
                    dataKey={`v${v.number}`}
                    fill={COLOURS[i % COLOURS.length]}
                    isAnimationActive={false}
                  />
                ))}
              </BarChart>
            )}
          </div>
        );
      }}
    </Show>
  );
}
