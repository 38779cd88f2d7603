import { ValidationError } from '../../errors.ts';
import type { StackRecord } from '../../metadata/types.ts';
import type { Project } from '../../stacks/project.ts';
import { type CliIo, colors, printJson, table } from '../io.ts';

function componentSummary(stack: StackRecord): string {
  const c = stack.components as Record<string, { type?: string } | undefined>;
  return ['orchestrator', 'artifactStore', 'metadataStore', 'stepRunner']
    .map((k) => `${k}=${c[k]?.type ?? '-'}`)
    .join(' ');
}

export async function stackList(project: Project, options: { json?: boolean }, io: CliIo) {
  const active = project.activeStackName();
  const page = await project.registry.stacks.list({ limit: 1000 });
  if (options.json)
    return printJson(io, { active, stacks: page.items.map((s) => ({ ...s, active: s.name === active })) });
  const c = colors(io);
  const rows = [['', 'STACK', 'COMPONENTS', 'TAGS']];
  for (const s of page.items)
    rows.push([s.name === active ? c.green('*') : ' ', s.name, componentSummary(s), s.tags.join(',')]);
  io.stdout.write(table(rows));
}

export async function stackDescribe(
  project: Project,
  name: string | undefined,
  options: { json?: boolean },
  io: CliIo,
) {
  const stack = await project.registry.stacks.get(name ?? project.activeStackName());
  const active = stack.name === project.activeStackName();
  if (options.json) return printJson(io, { ...stack, active });
  io.stdout.write(`${stack.name}${active ? ' (active)' : ''}\n`);
  if (stack.description) io.stdout.write(`  ${stack.description}\n`);
  for (const [k, v] of Object.entries(stack.components)) io.stdout.write(`  ${k.padEnd(18)} ${JSON.stringify(v)}\n`);
  io.stdout.write(`  ${'tags'.padEnd(18)} ${stack.tags.join(', ') || '-'}\n`);
}

export async function stackSet(project: Project, name: string, options: { json?: boolean }, io: CliIo) {
  if (!name) throw new ValidationError('Name the stack to activate: stackline stack set NAME.');
  await project.setActiveStack(name);
  if (options.json) printJson(io, { active: name });
  else io.stdout.write(`Active stack: ${name}\n`);
}
