import { apiClientFor } from '../../api/connect.ts';
import {
  type ApiConnection,
  apiConnectionPath,
  connectionFor,
  readSavedConnection,
  removeApiConnection,
  saveApiConnection,
} from '../../stacks/api-connection.ts';
import { resolveHome } from '../../stacks/project.ts';
import { type CliIo, printJson } from '../io.ts';

/**
 * `stackline login <api-url>`: connects this project (`.stackline/api.json`) to a Stackline API — a
 * bearer token for `stackline serve`, SigV4 with the default AWS credentials for API Gateway. The
 * connection is tried (`GET /stacks`) before it is saved: a wrong URL or credential saves nothing.
 */
export async function loginCommand(
  url: string,
  options: { token?: string; sigv4?: boolean; region?: string; json?: boolean },
  io: CliIo,
): Promise<void> {
  const connection = connectionFor(url, {
    token: options.token ?? io.env.STACKLINE_TOKEN,
    ...(options.sigv4 ? { sigv4: true } : {}),
    region: options.region,
  });
  const stacks = (await (await apiClientFor(connection)).listStacks({ limit: 100 })).items;
  const home = resolveHome(io.cwd, io.env);
  saveApiConnection(home, connection);
  if (options.json)
    return printJson(io, { url: connection.url, auth: connection.auth, stacks: stacks.map((s) => s.name) });
  io.stdout.write(
    `Connected to ${connection.url} (${describeAuth(connection)}); stacks: ${stacks.map((s) => s.name).join(', ') || 'none'}\n`,
  );
  io.stderr.write(`  saved in ${apiConnectionPath(home)}; \`stackline logout\` disconnects.\n`);
}

/** `stackline logout`: forgets the saved connection; commands work on local stacks again. */
export function logoutCommand(options: { json?: boolean }, io: CliIo): void {
  const home = resolveHome(io.cwd, io.env);
  const saved = readSavedConnection(home);
  const removed = removeApiConnection(home);
  if (options.json) printJson(io, { loggedOut: removed, url: saved?.url ?? null });
  else io.stdout.write(removed ? `Disconnected from ${saved?.url}.\n` : 'Not logged in to an API.\n');
}

export function describeAuth(connection: ApiConnection): string {
  return connection.auth === 'bearer' ? 'bearer token' : 'SigV4, default AWS credentials';
}
