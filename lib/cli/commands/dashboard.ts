import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { userInfo } from 'node:os';
import { startApiServer, tokenStorePath } from '../../api/server.ts';
import { startSigningProxy } from '../../api/signing-proxy.ts';
import { builtDashboardDirectory } from '../../api/static-dashboard.ts';
import { ApiTokenStore } from '../../api/tokens/token-store.ts';
import { StackConfigError } from '../../errors.ts';
import type { Project } from '../../stacks/project.ts';
import { type CliIo, printJson } from '../io.ts';

export interface DashboardOptions {
  port: number;
  stack?: string;
  /** An existing token to open the dashboard with; default: a session token revoked on exit. */
  token?: string;
  role: 'member' | 'release-manager';
  /** An API on AWS: serve the dashboard through a local SigV4-signing proxy instead. */
  api?: string;
  region?: string;
  open: boolean;
  json?: boolean;
}

/**
 * `stackline dashboard`: the web dashboard in a browser. Locally it starts the API with the
 * dashboard (as `stackline serve` does) and opens `http://127.0.0.1:PORT/#token=…`: the token goes
 * in the URL fragment, which browsers never send to a server, and the page moves it into
 * sessionStorage at once. Without `--token` it is a session token (`<user>@dashboard-…`, role
 * `--role`) revoked when the command stops. With `--api URL` (an API on AWS) it starts a signing
 * proxy on 127.0.0.1 instead (see `signing-proxy.ts`); no token is involved.
 */
export async function dashboardCommand(project: Project | undefined, options: DashboardOptions, io: CliIo) {
  const dashboardDir = builtDashboardDirectory();
  if (!dashboardDir)
    throw new StackConfigError('The dashboard is not built: run `npm run build` (it writes dist/dashboard).');
  const stopped = new Promise<void>((resolve) => {
    process.once('SIGINT', resolve);
    process.once('SIGTERM', resolve);
  });

  if (options.api) {
    const proxy = await startSigningProxy({
      apiUrl: options.api,
      dashboardDir,
      port: options.port,
      ...(options.region ? { region: options.region } : {}),
    });
    announce(proxy.url, `Dashboard for ${options.api} (requests signed with your AWS credentials)`, options, io);
    await stopped;
    await proxy.close();
    return;
  }

  if (!project) throw new StackConfigError('No Stackline project here: run `stackline init` first.');
  const tokens = ApiTokenStore.open(tokenStorePath(project));
  let token = options.token;
  let sessionTokenId: string | undefined;
  try {
    if (token) tokens.authenticate(token);
    else {
      const created = tokens.create({
        role: options.role,
        name: `${safeUser()}@dashboard-${randomBytes(3).toString('hex')}`,
      });
      token = created.token;
      sessionTokenId = created.record.id;
    }
  } finally {
    tokens.close();
  }
  const stack = await project.openStack(options.stack ?? project.activeStackName());
  try {
    const server = await startApiServer(project, stack, {
      port: options.port,
      dashboardDir,
      log: (line) => io.stderr.write(`${line}\n`),
    });
    announce(`${server.url}/#token=${encodeURIComponent(token)}`, `Dashboard for stack "${stack.name}"`, options, io);
    await stopped;
    await server.close();
  } finally {
    await stack.close();
    if (sessionTokenId) {
      const store = ApiTokenStore.open(tokenStorePath(project));
      store.revoke(sessionTokenId);
      store.close();
    }
  }
}

/** Token names allow letters, digits, ".", "_", "@" and "-". */
function safeUser(): string {
  const name = process.env.STACKLINE_USER ?? userInfo().username;
  return name.replace(/[^A-Za-z0-9._-]/g, '_') || 'user';
}

function announce(url: string, what: string, options: DashboardOptions, io: CliIo): void {
  if (options.json) printJson(io, { url });
  else io.stdout.write(`${what}: ${url}\n(Ctrl-C stops)\n`);
  if (options.open && canOpenBrowser()) openBrowser(url);
}

/** A browser can open only where there is a display: macOS, Windows, or X11/Wayland on Linux. */
function canOpenBrowser(): boolean {
  if (process.platform === 'darwin' || process.platform === 'win32') return true;
  return Boolean(process.env.DISPLAY || process.env.WAYLAND_DISPLAY);
}

function openBrowser(url: string): void {
  const [command, args] =
    process.platform === 'darwin'
      ? ['open', [url]]
      : process.platform === 'win32'
        ? ['cmd', ['/c', 'start', '', url]]
        : ['xdg-open', [url]];
  const child = spawn(command, args, { stdio: 'ignore', detached: true });
  child.on('error', () => undefined);
  child.unref();
}
