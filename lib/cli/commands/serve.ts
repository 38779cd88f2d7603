import { startApiServer, tokenStorePath } from '../../api/server.ts';
import { ApiTokenStore } from '../../api/tokens/token-store.ts';
import type { PipelineDefinition } from '../../dsl/pipeline.ts';
import { ValidationError } from '../../errors.ts';
import type { Project } from '../../stacks/project.ts';
import { type CliIo, printJson, table } from '../io.ts';

/**
 * `stackline serve`: the API for the active (or named) stack on 127.0.0.1 until SIGINT/SIGTERM.
 * Prints the URL first, so scripts can wait for it (`--port 0` picks a free port).
 */
export async function serveCommand(
  project: Project,
  options: { port: number; host: string; stack?: string; pipelines?: string[]; json?: boolean },
  io: CliIo,
): Promise<void> {
  const pipelines = await loadServedPipelines(options.pipelines ?? [], io.cwd);
  const stack = await project.openStack(options.stack ?? project.activeStackName());
  try {
    const server = await startApiServer(project, stack, {
      port: options.port,
      host: options.host,
      log: (line) => io.stderr.write(`${line}\n`),
      pipelines,
    });
    if (!['127.0.0.1', '::1', 'localhost'].includes(options.host))
      io.stderr.write(
        `warning: listening on ${options.host}: other machines can reach the API (tokens still required).\n`,
      );
    if (options.json) printJson(io, { url: server.url, stack: stack.name, pipelines: [...pipelines.keys()] });
    else io.stdout.write(`Stackline API for stack "${stack.name}" at ${server.url} (Ctrl-C stops)\n`);
    await new Promise<void>((resolve) => {
      process.once('SIGINT', resolve);
      process.once('SIGTERM', resolve);
    });
    await server.close();
  } finally {
    await stack.close();
  }
}

/**
 * The pipelines `POST /runs` may start: every pipeline the `--pipelines` files export, by name,
 * loaded once at start (files are resolved against the directory `serve` runs in).
 */
async function loadServedPipelines(files: string[], cwd: string): Promise<Map<string, PipelineDefinition>> {
  const { loadPipelineModule } = await import('../load-pipeline.ts');
  const byName = new Map<string, PipelineDefinition>();
  for (const file of files) {
    for (const [name, pipeline] of await loadPipelineModule(file, cwd)) {
      if (byName.has(name) && byName.get(name) !== pipeline)
        throw new ValidationError(`Two --pipelines files export a pipeline named "${name}"; names must be unique.`);
      byName.set(name, pipeline);
    }
  }
  return byName;
}

function withTokens<T>(project: Project, fn: (tokens: ApiTokenStore) => T): T {
  const tokens = ApiTokenStore.open(tokenStorePath(project));
  try {
    return fn(tokens);
  } finally {
    tokens.close();
  }
}

/** `stackline token create`: prints the token once; only its SHA-256 is stored. */
export function tokenCreate(project: Project, options: { role: string; name?: string; json?: boolean }, io: CliIo) {
  const { token, record } = withTokens(project, (t) => t.create(options));
  if (options.json) return printJson(io, { token, ...record });
  io.stdout.write(`${token}\n`);
  io.stderr.write(
    `Token "${record.name}" (role ${record.role}, id ${record.id}). It is shown only now: keep it somewhere safe.\n`,
  );
}

export function tokenList(project: Project, options: { json?: boolean }, io: CliIo) {
  const records = withTokens(project, (t) => t.list());
  if (options.json) return printJson(io, { tokens: records });
  if (records.length === 0) return void io.stdout.write('No tokens yet: `stackline token create --role member`.\n');
  io.stdout.write(
    table([
      ['ID', 'NAME', 'ROLE', 'CREATED', 'REVOKED'],
      ...records.map((r) => [r.id, r.name, r.role, r.createdAt.slice(0, 19), r.revokedAt?.slice(0, 19) ?? '-']),
    ]),
  );
}

export function tokenRevoke(project: Project, idOrName: string, options: { json?: boolean }, io: CliIo) {
  const record = withTokens(project, (t) => t.revoke(idOrName));
  if (options.json) return printJson(io, record);
  io.stdout.write(`Revoked token "${record.name}" (${record.id}).\n`);
}
