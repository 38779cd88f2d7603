import { ValidationError } from '../../errors.ts';
import { parsePromotionGate } from '../../metadata/promotion-rules.ts';
import { assertNames } from '../../metadata/store-rules.ts';
import { MODEL_STAGES, type ModelStage, type ModelVersion, type ModelVersionRef } from '../../metadata/types.ts';
import { compareModelVersions } from '../../models/compare.ts';
import { currentActor } from '../../models/model-context.ts';
import type { StackRuntime } from '../../stacks/project.ts';
import { type CliIo, colors, printJson, table } from '../io.ts';

/** `3` → 3; anything else (stage, alias, name, `latest`) stays a string. */
export function parseModelVersionRef(value: string): ModelVersionRef {
  return /^\d+$/.test(value) ? Number(value) : value;
}

function versionNumber(value: string): number {
  if (!/^\d+$/.test(value) || Number(value) < 1)
    throw new ValidationError(`${JSON.stringify(value)} is not a version number (1, 2, …).`);
  return Number(value);
}

function short(v: ModelVersion): string[] {
  const metrics = Object.entries(v.metadata)
    .filter(([, x]) => typeof x === 'number')
    .slice(0, 4)
    .map(([k, x]) => `${k}=${Number(x).toPrecision(4)}`)
    .join(' ');
  return [
    `v${v.number}`,
    v.name ?? '-',
    v.stage ?? '-',
    v.aliases.join(',') || '-',
    v.createdAt.slice(0, 19).replace('T', ' '),
    metrics,
  ];
}

export async function modelCreate(
  stack: StackRuntime,
  name: string,
  options: { description?: string; tag: string[]; gate?: string; json?: boolean },
  io: CliIo,
) {
  assertNames([['model', name]], options.tag);
  const model = await stack.metadata.models.create({
    name,
    ...(options.description ? { description: options.description } : {}),
    tags: options.tag,
    ...(options.gate === undefined ? {} : { promotionGate: parsePromotionGate(options.gate) }),
  });
  if (options.json) return printJson(io, model);
  io.stdout.write(`Created model ${model.name}${model.tags.length ? ` (${model.tags.join(', ')})` : ''}\n`);
}

/** `model gate <model> <metric:max|min|none>`: sets or removes the promotion gate. */
export async function modelGate(
  stack: StackRuntime,
  name: string,
  gate: string,
  options: { json?: boolean },
  io: CliIo,
) {
  const model = await stack.metadata.models.setPromotionGate(name, gate === 'none' ? null : parsePromotionGate(gate));
  if (options.json) return printJson(io, model);
  const set = model.promotionGate;
  io.stdout.write(
    set
      ? `${name}: production needs ${set.metric} ${set.direction === 'max' ? 'above' : 'below'} the holder's\n`
      : `${name}: no promotion gate\n`,
  );
}

export async function modelList(
  stack: StackRuntime,
  options: { tag?: string; limit: number; json?: boolean },
  io: CliIo,
) {
  const page = await stack.metadata.models.list({ limit: options.limit, ...(options.tag ? { tag: options.tag } : {}) });
  if (options.json) return printJson(io, { models: page.items, nextCursor: page.nextCursor ?? null });
  const rows = [['MODEL', 'VERSIONS', 'TAGS', 'DESCRIPTION']];
  for (const m of page.items)
    rows.push([m.name, String(m.latestVersion), m.tags.join(',') || '-', m.description ?? '']);
  io.stdout.write(page.items.length ? table(rows) : 'No models yet.\n');
}

export async function modelShow(
  stack: StackRuntime,
  name: string,
  version: string | undefined,
  options: { json?: boolean },
  io: CliIo,
) {
  if (version !== undefined) {
    const v = await stack.metadata.models.getVersion(name, parseModelVersionRef(version));
    if (options.json) return printJson(io, v);
    const c = colors(io);
    io.stdout.write(`${c.bold(`${v.model} v${v.number}`)}${v.name ? ` (${v.name})` : ''} ${v.id}\n`);
    io.stdout.write(
      `  stage     ${v.stage ?? '-'}\n  aliases   ${v.aliases.join(', ') || '-'}\n  tags      ${v.tags.join(', ') || '-'}\n  runs      ${v.runIds.join(', ') || '-'}\n`,
    );
    io.stdout.write(`  metadata  ${JSON.stringify(v.metadata)}\n  artifacts\n`);
    for (const a of v.artifacts)
      io.stdout.write(`    ${a.role.padEnd(10)} ${a.artifactName} (${a.artifactVersionId})\n`);
    return;
  }
  const model = await stack.metadata.models.get(name);
  const holders = await Promise.all(
    (['production', 'staging'] as const).map(async (stage) => {
      const page = await stack.metadata.models.listVersions(name, { stage, limit: 1 });
      return [stage, page.items[0]?.number ?? null] as const;
    }),
  );
  if (options.json) return printJson(io, { ...model, stages: Object.fromEntries(holders) });
  io.stdout.write(
    `${model.name}${model.description ? ` — ${model.description}` : ''}\n  versions    ${model.latestVersion}\n`,
  );
  for (const [stage, n] of holders) io.stdout.write(`  ${stage.padEnd(11)} ${n === null ? '-' : `v${n}`}\n`);
  io.stdout.write(`  tags        ${model.tags.join(', ') || '-'}\n`);
}

export async function modelVersions(
  stack: StackRuntime,
  name: string,
  options: { tag?: string; stage?: string; limit: number; json?: boolean },
  io: CliIo,
) {
  if (options.stage && !(MODEL_STAGES as readonly string[]).includes(options.stage)) {
    throw new ValidationError(`--stage ${JSON.stringify(options.stage)} is not a stage (${MODEL_STAGES.join(', ')}).`);
  }
  await stack.metadata.models.get(name);
  const page = await stack.metadata.models.listVersions(name, {
    limit: options.limit,
    ...(options.tag ? { tag: options.tag } : {}),
    ...(options.stage ? { stage: options.stage as ModelStage } : {}),
  });
  if (options.json) return printJson(io, { versions: page.items, nextCursor: page.nextCursor ?? null });
  io.stdout.write(table([['VERSION', 'NAME', 'STAGE', 'ALIASES', 'CREATED', 'METRICS'], ...page.items.map(short)]));
}

export async function modelHistory(
  stack: StackRuntime,
  name: string,
  options: { limit: number; json?: boolean },
  io: CliIo,
) {
  await stack.metadata.models.get(name);
  const page = await stack.metadata.models.history(name, { limit: options.limit });
  if (options.json) return printJson(io, { history: page.items, nextCursor: page.nextCursor ?? null });
  const rows = [['WHEN', 'VERSION', 'CHANGE', 'BY', 'REASON']];
  for (const h of page.items) {
    const change =
      h.kind === 'stage'
        ? `${h.fromStage ?? 'none'} → ${h.toStage}`
        : h.kind === 'alias-removed'
          ? `alias ${h.alias} removed`
          : `alias ${h.alias}${h.previousVersion ? ` (from v${h.previousVersion})` : ''}`;
    rows.push([h.at.slice(0, 19).replace('T', ' '), `v${h.versionNumber}`, change, h.actor, h.reason ?? '']);
  }
  io.stdout.write(page.items.length ? table(rows) : 'No stage changes yet.\n');
}

export async function modelCompare(
  stack: StackRuntime,
  name: string,
  refs: string[],
  options: { json?: boolean; all?: boolean },
  io: CliIo,
) {
  if (refs.length < 2)
    throw new ValidationError(
      'Name at least two versions to compare: stackline model compare MODEL 1 2 [production ...].',
    );
  const versions = await Promise.all(refs.map((r) => stack.metadata.models.getVersion(name, parseModelVersionRef(r))));
  const comparison = compareModelVersions(versions);
  if (options.json) return printJson(io, comparison);
  const header = ['KEY', ...comparison.versions.map((v) => `v${v.number}${v.stage ? ` (${v.stage})` : ''}`)];
  const rows = comparison.rows.map((r) => [
    r.differs ? `* ${r.key}` : `  ${r.key}`,
    ...r.values.map((x) => (x === undefined ? '-' : JSON.stringify(x))),
  ]);
  io.stdout.write(table([header, ...rows]));
}

/**
 * `model promote`'s arguments checked and converted, the same for the local stores and the API:
 * a known stage, a version number, and `--expected-holder` as a number or `none` (null).
 */
export function promotionRequest(
  version: string,
  stage: string,
  options: { force?: boolean; reason?: string; expectedHolder?: string },
): {
  version: number;
  stage: ModelStage;
  options: { force?: true; reason?: string; expectedHolder?: number | null };
} {
  if (!(MODEL_STAGES as readonly string[]).includes(stage))
    throw new ValidationError(`${JSON.stringify(stage)} is not a stage (${MODEL_STAGES.join(', ')}).`);
  const expected = options.expectedHolder;
  return {
    version: versionNumber(version),
    stage: stage as ModelStage,
    options: {
      ...(options.force ? { force: true } : {}),
      ...(options.reason ? { reason: options.reason } : {}),
      ...(expected === undefined ? {} : { expectedHolder: expected === 'none' ? null : versionNumber(expected) }),
    },
  };
}

export async function modelPromote(
  stack: StackRuntime,
  name: string,
  version: string,
  stage: string,
  options: { force?: boolean; reason?: string; expectedHolder?: string; json?: boolean },
  io: CliIo,
) {
  const request = promotionRequest(version, stage, options);
  const changes = await stack.metadata.models.setStage(name, request.version, request.stage, {
    actor: currentActor(io.env),
    ...request.options,
  });
  if (options.json) return printJson(io, { changes });
  if (changes.length === 0) io.stdout.write(`${name} v${version} is already in ${stage}.\n`);
  for (const ch of changes)
    io.stdout.write(`${name} v${ch.versionNumber}: ${ch.fromStage ?? 'none'} → ${ch.toStage}\n`);
}

export async function modelAliasSet(
  stack: StackRuntime,
  name: string,
  alias: string,
  version: string,
  options: { reason?: string; json?: boolean },
  io: CliIo,
) {
  const change = await stack.metadata.models.setAlias(name, alias, versionNumber(version), {
    actor: currentActor(io.env),
    ...(options.reason ? { reason: options.reason } : {}),
  });
  if (options.json) return printJson(io, change);
  io.stdout.write(
    `${name}: alias ${alias} → v${change.versionNumber}${change.previousVersion ? ` (was v${change.previousVersion})` : ''}\n`,
  );
}

export async function modelAliasRemove(
  stack: StackRuntime,
  name: string,
  alias: string,
  options: { reason?: string; json?: boolean },
  io: CliIo,
) {
  const change = await stack.metadata.models.removeAlias(name, alias, {
    actor: currentActor(io.env),
    ...(options.reason ? { reason: options.reason } : {}),
  });
  if (options.json) return printJson(io, change);
  io.stdout.write(`${name}: alias ${alias} removed from v${change.versionNumber}\n`);
}
