/**
 * The CLI's commands, each loaded when it runs: `stackline --help` and a local run do not load
 * the SQLite store, zod schemas, the compiler or the AWS code of commands they do not use. Each
 * export has the signature of the command it forwards to.
 */
import type { Project } from '../stacks/project.ts';

// biome-ignore lint/suspicious/noExplicitAny: forwards any command's arguments unchanged
type AsyncFn = (...args: any[]) => unknown;

/** Forwards to `name` of the module `load` imports, once it is loaded (a command's result is awaited anyway). */
function lazy<M, K extends keyof M>(
  load: () => Promise<M>,
  name: K,
): M[K] extends AsyncFn ? (...args: Parameters<M[K]>) => Promise<Awaited<ReturnType<M[K]>>> : never {
  return (async (...args: unknown[]) => ((await load())[name] as AsyncFn)(...args)) as never;
}

const artifacts = () => import('./commands/artifacts.ts');
const maintenance = () => import('./commands/artifacts-maintenance.ts');
const backup = () => import('./commands/backup.ts');
const serve = () => import('./commands/serve.ts');
const bundle = () => import('./commands/bundle.ts');
const compile = () => import('./commands/compile.ts');
const dashboard = () => import('./commands/dashboard.ts');
const deploy = () => import('./commands/deploy.ts');
const model = () => import('./commands/model.ts');
const run = () => import('./commands/run.ts');
const runs = () => import('./commands/runs.ts');
const stack = () => import('./commands/stack.ts');
const login = () => import('./commands/login.ts');
const remote = () => import('./commands/remote.ts');

/** The API connection of a command (`--api`, `STACKLINE_API_URL`, or the saved login), if any. */
export async function apiConnectionAt(cwd: string, env: NodeJS.ProcessEnv, apiOption: string | undefined) {
  const [{ resolveApiConnection }, { resolveHome }] = await Promise.all([
    import('../stacks/api-connection.ts'),
    import('../stacks/project.ts'),
  ]);
  return resolveApiConnection(resolveHome(cwd, env), env, apiOption);
}

/** Opens the project (`.stackline/`) that `cwd` and `env` point at. */
export async function openProjectAt(cwd: string, env: NodeJS.ProcessEnv): Promise<Project> {
  const { Project, resolveHome } = await import('../stacks/project.ts');
  return Project.open(resolveHome(cwd, env));
}

export const artifactsGc = lazy(maintenance, 'artifactsGc');
export const artifactsVerify = lazy(maintenance, 'artifactsVerify');
export const backupCommand = lazy(backup, 'backupCommand');
export const restoreCommand = lazy(backup, 'restoreCommand');
export const serveCommand = lazy(serve, 'serveCommand');
export const tokenCreate = lazy(serve, 'tokenCreate');
export const tokenList = lazy(serve, 'tokenList');
export const tokenRevoke = lazy(serve, 'tokenRevoke');
export const runsCancel = lazy(runs, 'runsCancel');
export const runsReap = lazy(runs, 'runsReap');
export const artifactsList = lazy(artifacts, 'artifactsList');
export const artifactsLoad = lazy(artifacts, 'artifactsLoad');
export const artifactsShow = lazy(artifacts, 'artifactsShow');
export const artifactsVersions = lazy(artifacts, 'artifactsVersions');
export const bundleCommand = lazy(bundle, 'bundleCommand');
export const compileCommand = lazy(compile, 'compileCommand');
export const dashboardCommand = lazy(dashboard, 'dashboardCommand');
export const deployCommand = lazy(deploy, 'deployCommand');
export const destroyCommand = lazy(deploy, 'destroyCommand');
export const modelAliasRemove = lazy(model, 'modelAliasRemove');
export const modelAliasSet = lazy(model, 'modelAliasSet');
export const modelCompare = lazy(model, 'modelCompare');
export const modelCreate = lazy(model, 'modelCreate');
export const modelGate = lazy(model, 'modelGate');
export const modelHistory = lazy(model, 'modelHistory');
export const modelList = lazy(model, 'modelList');
export const modelPromote = lazy(model, 'modelPromote');
export const modelShow = lazy(model, 'modelShow');
export const modelVersions = lazy(model, 'modelVersions');
export const runCommand = lazy(run, 'runCommand');
export const runsExplain = lazy(runs, 'runsExplain');
export const runsList = lazy(runs, 'runsList');
export const runsShow = lazy(runs, 'runsShow');
export const stackDelete = lazy(stack, 'stackDelete');
export const stackDescribe = lazy(stack, 'stackDescribe');
export const stackList = lazy(stack, 'stackList');
export const stackProvision = lazy(stack, 'stackProvision');
export const stackRegister = lazy(stack, 'stackRegister');
export const stackSet = lazy(stack, 'stackSet');
export const loginCommand = lazy(login, 'loginCommand');
export const logoutCommand = lazy(login, 'logoutCommand');
export const remoteArtifactsLoad = lazy(remote, 'remoteArtifactsLoad');
export const remoteModelPromote = lazy(remote, 'remoteModelPromote');
export const remoteRun = lazy(remote, 'remoteRun');
export const remoteRunsList = lazy(remote, 'remoteRunsList');
export const remoteStackDescribe = lazy(remote, 'remoteStackDescribe');
export const remoteStackList = lazy(remote, 'remoteStackList');
