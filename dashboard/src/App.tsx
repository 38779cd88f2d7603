import type { ReactElement } from 'react';
import { useHashRoute } from './hooks.ts';
import { ArtifactsPage } from './pages/ArtifactsPage.tsx';
import { ModelsPage } from './pages/ModelsPage.tsx';
import { RunPage } from './pages/RunPage.tsx';
import { RunsPage } from './pages/RunsPage.tsx';

const NAV = [
  ['runs', 'Runs'],
  ['artifacts', 'Artifacts'],
  ['models', 'Models'],
] as const;

/** Hash routes: `#/runs`, `#/runs/<id>`, `#/artifacts/<name>/<version>`, `#/models/<name>`. */
export function App() {
  const [section = 'runs', first, second] = useHashRoute();
  const key = [section, first, second].join('/');
  let page: ReactElement;
  if (section === 'runs' && first) page = <RunPage key={key} runId={first} />;
  else if (section === 'artifacts')
    page = <ArtifactsPage key={first ?? ''} name={first} version={second ? Number(second) : undefined} />;
  else if (section === 'models') page = <ModelsPage key={first ?? ''} name={first} />;
  else page = <RunsPage />;
  return (
    <>
      <header>
        <a className="brand" href="#/runs">
          Stackline
        </a>
        <nav>
          {NAV.map(([id, label]) => (
            <a key={id} href={`#/${id}`} className={section === id ? 'active' : ''}>
              {label}
            </a>
          ))}
        </nav>
      </header>
      <main>{page}</main>
    </>
  );
}
