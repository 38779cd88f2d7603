import { useState } from 'react';
import { api, type PipelineList, query, type Run, type RunPage } from '../api.ts';
import { Show, Status, Tags } from '../components/common.tsx';
import { formatDuration, formatTime, runDuration } from '../format.ts';
import { useApi } from '../hooks.ts';

const STATUSES = ['', 'pending', 'running', 'completed', 'failed', 'cancelled'];
/** Runs in progress are re-read this often. */
const POLL_MS = 2000;
const PAGE = 50;

const inProgress = (r: Run) => r.status === 'running' || r.status === 'pending';

/** Who or what started a run: a trigger recorded in its config or metadata, else the actor. */
function triggerOf(run: Run): string {
  const t = run.metadata.trigger ?? run.config.trigger;
  if (typeof t === 'string') return t;
  if (t && typeof t === 'object' && 'kind' in t) return String((t as { kind: unknown }).kind);
  return run.createdBy;
}

/** Runs, newest first, with the API's filters; re-read every 2 s while any shown run is in progress. */
export function RunsPage() {
  const [filters, setFilters] = useState({ pipeline: '', status: '', tag: '', since: '' });
  const [limit, setLimit] = useState(PAGE);
  const pipelines = useApi('pipelines', () => api<PipelineList>('pipelines'));
  const q = query({ ...filters, limit });
  const runs = useApi(
    `runs${q}`,
    () => api<RunPage>(`runs${q}`),
    (page) => (page.items.some(inProgress) ? POLL_MS : undefined),
  );
  const set = (key: keyof typeof filters) => (e: { target: { value: string } }) => {
    setLimit(PAGE);
    setFilters((f) => ({ ...f, [key]: e.target.value }));
  };

  return (
    <section>
      <h1>Runs</h1>
      <form className="filters" onSubmit={(e) => e.preventDefault()}>
        <label>
          Pipeline
          <select name="pipeline" value={filters.pipeline} onChange={set('pipeline')}>
            <option value="">all</option>
            {pipelines.data?.items.map((p) => (
              <option key={p.name} value={p.name}>
                {p.name} ({p.runCount})
              </option>
            ))}
          </select>
        </label>
        <label>
          Status
          <select name="status" value={filters.status} onChange={set('status')}>
            {STATUSES.map((s) => (
              <option key={s} value={s}>
                {s || 'all'}
              </option>
            ))}
          </select>
        </label>
        <label>
          Tag
          <input name="tag" placeholder="key:value" value={filters.tag} onChange={set('tag')} />
        </label>
        <label>
          Since
          <input name="since" type="date" value={filters.since} onChange={set('since')} />
        </label>
        {runs.data?.items.some(inProgress) && <span className="live">● live</span>}
      </form>
      <Show loaded={runs}>
        {(page) =>
          page.items.length === 0 ? (
            <p className="muted">No runs match.</p>
          ) : (
            <>
              <table className="list" data-testid="runs-table">
                <thead>
                  <tr>
                    <th>Status</th>
                    <th>Pipeline</th>
                    <th>Run</th>
                    <th>Trigger</th>
                    <th>Started</th>
                    <th>Duration</th>
                    <th>Tags</th>
                  </tr>
                </thead>
                <tbody>
                  {page.items.map((r) => (
                    <tr key={r.id} data-run={r.id}>
                      <td>
                        <Status status={r.status} />
                      </td>
                      <td>{r.pipeline}</td>
                      <td>
                        <a href={`#/runs/${encodeURIComponent(r.id)}`}>{r.id}</a>
                      </td>
                      <td>{triggerOf(r)}</td>
                      <td>{formatTime(r.startedAt)}</td>
                      <td>{formatDuration(runDuration(r))}</td>
                      <td>
                        <Tags tags={r.tags} />
                      </td>
                    </tr>
                  ))}
                </tbody>
              </table>
              {page.nextCursor && (
                <button type="button" onClick={() => setLimit((l) => Math.min(l + PAGE, 1000))}>
                  Show more
                </button>
              )}
            </>
          )
        }
      </Show>
    </section>
  );
}
