/**
 * A workstation's connection to a Stackline API (`stackline login <url>`): the URL and how to
 * authenticate — a bearer token for a local `stackline serve`, SigV4 with the default AWS credential
 * chain for API Gateway. Stored in the project's home (`.stackline/api.json`, mode 0600); `--api URL`
 * or `STACKLINE_API_URL` (with `STACKLINE_TOKEN` for a bearer token) override it for one command.
 */
import { chmodSync, existsSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { z } from 'zod';
import { ValidationError } from '../errors.ts';
import { formatZodIssues } from '../util/zod-format.ts';

export const ApiConnectionSchema = z.discriminatedUnion('auth', [
  z.object({ url: z.url(), auth: z.literal('bearer'), token: z.string().min(1) }),
  z.object({ url: z.url(), auth: z.literal('sigv4'), region: z.string().min(1).optional() }),
]);
export type ApiConnection = z.output<typeof ApiConnectionSchema>;

const EXECUTE_API = /\.execute-api\.[a-z0-9-]+\.amazonaws\.com(\.cn)?$/;

export function apiConnectionPath(home: string): string {
  return join(home, 'api.json');
}

/**
 * The connection `login` makes of a URL: a token (given, or `STACKLINE_TOKEN`) means bearer; an API
 * Gateway URL, or `sigv4`, means SigV4.
 *
 * @throws ValidationError when the URL is not http(s), or a non-AWS URL comes without a token
 */
export function connectionFor(
  url: string,
  options: { token?: string | undefined; sigv4?: boolean; region?: string | undefined } = {},
): ApiConnection {
  let parsed: URL;
  try {
    parsed = new URL(url);
  } catch {
    throw new ValidationError(`"${url}" is not a URL: give the API's base URL, e.g. http://127.0.0.1:8787.`);
  }
  if (!['http:', 'https:'].includes(parsed.protocol))
    throw new ValidationError(`"${url}" is not an http(s) URL: give the API's base URL.`);
  const base = parsed.href.replace(/\/+$/, '');
  if (options.token && !options.sigv4) return { url: base, auth: 'bearer', token: options.token };
  if (options.sigv4 || EXECUTE_API.test(parsed.hostname))
    return { url: base, auth: 'sigv4', ...(options.region ? { region: options.region } : {}) };
  throw new ValidationError(
    `${base} is not an API Gateway URL, so it needs a bearer token: pass --token (from \`stackline token create\` on the server) or set STACKLINE_TOKEN; for an API behind a custom domain pass --sigv4 --region REGION.`,
  );
}

/** The saved connection of the project at `home`, if it logged in. @throws ValidationError if the file is damaged */
export function readSavedConnection(home: string): ApiConnection | undefined {
  const path = apiConnectionPath(home);
  if (!existsSync(path)) return undefined;
  const parsed = ApiConnectionSchema.safeParse(JSON.parse(readFileSync(path, 'utf8')));
  if (!parsed.success)
    throw new ValidationError(
      `${path} is invalid (${formatZodIssues(parsed.error)}): run \`stackline login URL\` again.`,
    );
  return parsed.data;
}

/**
 * The connection a command uses: `--api URL`, else `STACKLINE_API_URL`, else the saved login;
 * undefined when none (the command then works on local stacks, as before any login).
 */
export function resolveApiConnection(
  home: string,
  env: NodeJS.ProcessEnv,
  apiOption?: string | undefined,
): ApiConnection | undefined {
  const url = apiOption ?? env.STACKLINE_API_URL;
  const saved = readSavedConnection(home);
  if (!url) return saved;
  const token =
    env.STACKLINE_TOKEN ??
    (saved?.auth === 'bearer' && saved.url === url.replace(/\/+$/, '') ? saved.token : undefined);
  return connectionFor(url, { token });
}

/** Writes the connection atomically, readable by the user only (it may hold a token). */
export function saveApiConnection(home: string, connection: ApiConnection): void {
  const path = apiConnectionPath(home);
  const tmp = `${path}.tmp`;
  writeFileSync(tmp, `${JSON.stringify(connection, null, 2)}\n`, { mode: 0o600 });
  chmodSync(tmp, 0o600);
  renameSync(tmp, path);
}

/** @returns whether there was a saved connection */
export function removeApiConnection(home: string): boolean {
  const path = apiConnectionPath(home);
  const existed = existsSync(path);
  rmSync(path, { force: true });
  return existed;
}
