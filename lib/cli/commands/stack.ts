import { ValidationError } from '../../errors.ts';
import type { JsonValue, StackRecord } from '../../metadata/types.ts';
import type { Project } from '../../stacks/project.ts';
import { DEFAULT_STACK_NAME, STACK_NAME, StackComponentsSchema } from '../../stacks/stack-config.ts';
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
  printStack(io, stack, active);
}

function printStack(io: CliIo, stack: StackRecord, active: boolean) {
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

export interface StackRegisterOptions {
  orchestrator: 'local' | 'step-functions';
  roleArn?: string;
  stateMachinePrefix?: string;
  /** ECS steps (`orchestrator.ecs`): the runner stack's EcsRunner* outputs; lists comma-separated. */
  ecsClusterArn?: string;
  ecsTaskDefinitionArn?: string;
  ecsContainerName?: string;
  ecsSubnets?: string;
  ecsSecurityGroups?: string;
  stepRunner: 'in-process' | 'lambda';
  functionName?: string;
  artifactStore: 'local' | 's3';
  bucket?: string;
  prefix?: string;
  sse?: 'AES256' | 'aws:kms';
  kmsKeyId?: string;
  metadataStore: 'sqlite' | 'dynamodb';
  tablePrefix?: string;
  region?: string;
  endpoint?: string;
  description?: string;
  tag: string[];
  /** Pipelines whose steps may promote to production on this stack (`components.promoters`). */
  promoter?: string[];
  setActive?: boolean;
  json?: boolean;
}

type ComponentKey = 'orchestrator' | 'artifactStore' | 'metadataStore' | 'stepRunner';

/** The CLI option that sets each component field, for messages in the user's terms. */
const FLAG_OF_FIELD: Record<string, string> = {
  bucket: '--bucket',
  prefix: '--prefix',
  serverSideEncryption: '--sse',
  kmsKeyId: '--kms-key-id',
  tablePrefix: '--table-prefix',
  region: '--region',
  endpoint: '--endpoint',
  roleArn: '--role-arn',
  stateMachinePrefix: '--state-machine-prefix',
  functionName: '--function-name',
};

/** The `stack register` option that sets each field of `orchestrator.ecs`. */
export const ECS_SETTING_FLAGS: Record<string, string> = {
  clusterArn: '--ecs-cluster-arn',
  taskDefinitionArn: '--ecs-task-definition-arn',
  containerName: '--ecs-container-name',
  subnets: '--ecs-subnets',
  securityGroups: '--ecs-security-groups',
};
const ECS_OPTIONS = [
  'ecsClusterArn',
  'ecsTaskDefinitionArn',
  'ecsContainerName',
  'ecsSubnets',
  'ecsSecurityGroups',
] as const;

/** Options that only mean something with a given choice, and what that choice is called. */
const ONLY_WITH: Array<{
  option: keyof StackRegisterOptions;
  flag: string;
  applies: (o: StackRegisterOptions) => boolean;
  requirement: string;
}> = [
  {
    option: 'roleArn',
    flag: '--role-arn',
    applies: (o) => o.orchestrator === 'step-functions',
    requirement: '--orchestrator step-functions',
  },
  {
    option: 'stateMachinePrefix',
    flag: '--state-machine-prefix',
    applies: (o) => o.orchestrator === 'step-functions',
    requirement: '--orchestrator step-functions',
  },
  ...ECS_OPTIONS.map((option) => ({
    option,
    flag: `--${option.replace(/[A-Z]/g, (c) => `-${c.toLowerCase()}`)}`,
    applies: (o: StackRegisterOptions) => o.orchestrator === 'step-functions',
    requirement: '--orchestrator step-functions',
  })),
  {
    option: 'functionName',
    flag: '--function-name',
    applies: (o) => o.stepRunner === 'lambda',
    requirement: '--step-runner lambda',
  },
  { option: 'bucket', flag: '--bucket', applies: (o) => o.artifactStore === 's3', requirement: '--artifact-store s3' },
  { option: 'prefix', flag: '--prefix', applies: (o) => o.artifactStore === 's3', requirement: '--artifact-store s3' },
  { option: 'sse', flag: '--sse', applies: (o) => o.artifactStore === 's3', requirement: '--artifact-store s3' },
  { option: 'kmsKeyId', flag: '--kms-key-id', applies: (o) => o.sse === 'aws:kms', requirement: '--sse aws:kms' },
  {
    option: 'tablePrefix',
    flag: '--table-prefix',
    applies: (o) => o.metadataStore === 'dynamodb',
    requirement: '--metadata-store dynamodb',
  },
  ...(['region', 'endpoint'] as const).map((option) => ({
    option,
    flag: `--${option}`,
    applies: usesAws,
    requirement: 'an AWS component (--artifact-store s3, --metadata-store dynamodb or --orchestrator step-functions)',
  })),
];

function usesAws(o: StackRegisterOptions): boolean {
  return o.artifactStore === 's3' || o.metadataStore === 'dynamodb' || o.orchestrator === 'step-functions';
}

/** The components a `stack register` command line describes, before validation. */
function componentsFrom(o: StackRegisterOptions): Record<ComponentKey, Record<string, unknown>> {
  const aws = { region: o.region, endpoint: o.endpoint };
  return {
    orchestrator:
      o.orchestrator === 'local'
        ? { type: 'local' }
        : {
            type: 'step-functions',
            roleArn: o.roleArn,
            stateMachinePrefix: o.stateMachinePrefix,
            ...aws,
            ...(ECS_OPTIONS.some((option) => o[option] !== undefined)
              ? {
                  ecs: {
                    clusterArn: o.ecsClusterArn,
                    taskDefinitionArn: o.ecsTaskDefinitionArn,
                    containerName: o.ecsContainerName,
                    subnets: o.ecsSubnets?.split(',').filter(Boolean),
                    securityGroups: o.ecsSecurityGroups?.split(',').filter(Boolean),
                  },
                }
              : {}),
          },
    stepRunner: o.stepRunner === 'lambda' ? { type: 'lambda', functionName: o.functionName } : { type: 'in-process' },
    artifactStore:
      o.artifactStore === 'local'
        ? { type: 'local' }
        : { type: 's3', bucket: o.bucket, prefix: o.prefix, serverSideEncryption: o.sse, kmsKeyId: o.kmsKeyId, ...aws },
    metadataStore:
      o.metadataStore === 'sqlite' ? { type: 'sqlite' } : { type: 'dynamodb', tablePrefix: o.tablePrefix, ...aws },
  };
}

/**
 * Validates a `stack register` command line against the stack schemas and returns the components,
 * with every problem named by its CLI option ("--artifact-store s3 needs --bucket").
 */
function validateRegistration(name: string, o: StackRegisterOptions): Record<string, JsonValue> {
  const problems: string[] = [];
  if (!STACK_NAME.test(name)) {
    problems.push(`the name must be 1–63 lowercase letters, digits, "-" or "_", starting with a letter or digit`);
  }
  if (name === DEFAULT_STACK_NAME) problems.push('"default" is the built-in local stack; choose another name');
  for (const { option, flag, applies, requirement } of ONLY_WITH) {
    if (o[option] !== undefined && !applies(o)) problems.push(`${flag} is only used with ${requirement}`);
  }
  if (o.orchestrator === 'step-functions') {
    if (o.stepRunner !== 'lambda' || !o.functionName)
      problems.push('--orchestrator step-functions needs --step-runner lambda --function-name NAME');
    if (o.artifactStore !== 's3' || o.metadataStore !== 'dynamodb') {
      problems.push(
        '--orchestrator step-functions needs --artifact-store s3 and --metadata-store dynamodb (steps run in AWS)',
      );
    }
  } else if (o.stepRunner === 'lambda') {
    problems.push('--step-runner lambda is only used with --orchestrator step-functions');
  }
  for (const tag of o.tag) {
    if (!/^[^:\s]+:\S/.test(tag)) problems.push(`--tag ${JSON.stringify(tag)} is not key:value`);
  }
  const raw = componentsFrom(o);
  const promoters = o.promoter !== undefined && o.promoter.length > 0 ? { promoters: o.promoter } : {};
  const parsed = StackComponentsSchema.safeParse({ ...raw, ...promoters });
  if (!parsed.success) {
    for (const issue of parsed.error.issues) {
      const [component, field, ecsField] = issue.path.map(String) as [ComponentKey, string | undefined, string?];
      if (field === 'ecs' && ecsField !== undefined) {
        const given = (raw.orchestrator.ecs as Record<string, unknown>)[ecsField];
        problems.push(
          given === undefined
            ? `ECS settings need ${ECS_SETTING_FLAGS[ecsField]} (with ${Object.values(ECS_SETTING_FLAGS).slice(0, 4).join(', ')})`
            : `${ECS_SETTING_FLAGS[ecsField]}: ${issue.message}`,
        );
        continue;
      }
      const flag = field === undefined ? undefined : FLAG_OF_FIELD[field];
      const value = field === undefined ? undefined : raw[component]?.[field];
      const choice = `--${component.replace(/[A-Z]/g, (c) => `-${c.toLowerCase()}`)} ${String(raw[component]?.type)}`;
      if (flag === undefined) problems.push(`${issue.path.join('.')}: ${issue.message}`);
      else if (value === undefined) problems.push(`${choice} needs ${flag}`);
      else problems.push(`${flag} ${JSON.stringify(value)}: ${issue.message}`);
    }
  }
  if (problems.length > 0) {
    throw new ValidationError(`Cannot register stack "${name}": ${[...new Set(problems)].join('; ')}.`, {
      context: { stack: name },
    });
  }
  // Stored as parsed (defaults filled in, undefined settings dropped by JSON), so what `describe` shows is what runs.
  return JSON.parse(JSON.stringify(parsed.data!)) as Record<string, JsonValue>;
}

/**
 * `stackline stack register NAME`: creates or replaces a stack in the project registry. Only the
 * configuration is checked; AWS resources are neither contacted nor created (see `stack provision`).
 */
export async function stackRegister(project: Project, name: string, options: StackRegisterOptions, io: CliIo) {
  const components = validateRegistration(name, options);
  const existed = (await project.registry.stacks.find(name)) !== undefined;
  const stack = await project.registry.stacks.put({
    name,
    components,
    ...(options.description !== undefined && { description: options.description }),
    tags: options.tag,
  });
  if (options.setActive) await project.setActiveStack(name);
  const active = project.activeStackName() === name;
  if (options.json) return printJson(io, { ...stack, active });
  io.stdout.write(`${existed ? 'Updated' : 'Registered'} stack ${name}\n`);
  printStack(io, stack, active);
  if (usesAws(options)) {
    io.stderr.write(
      colors(io).dim(
        `  on an emulator or dev account, create its tables and bucket: stackline stack provision ${name}\n`,
      ),
    );
  }
}

/**
 * `stackline stack delete NAME`: removes a stack from the registry. Its runs, artifacts and AWS
 * resources stay where they are. The default stack and the active stack cannot be deleted.
 */
export async function stackDelete(project: Project, name: string, options: { json?: boolean }, io: CliIo) {
  if (name === DEFAULT_STACK_NAME) {
    throw new ValidationError('The default stack is built in and cannot be deleted.', { context: { stack: name } });
  }
  if (name === project.activeStackName()) {
    throw new ValidationError(
      `Stack "${name}" is the active stack; activate another one first (stackline stack set ${DEFAULT_STACK_NAME}).`,
      { context: { stack: name } },
    );
  }
  await project.registry.stacks.delete(name);
  if (options.json) return printJson(io, { deleted: name });
  io.stdout.write(`Deleted stack ${name} (its runs, artifacts and AWS resources are left as they are)\n`);
}

/**
 * `stackline stack provision NAME`: creates the DynamoDB tables and the S3 bucket of a stack on an
 * emulator or in a dev account, leaving existing ones alone. Production stacks get theirs from CDK.
 */
export async function stackProvision(project: Project, name: string, options: { json?: boolean }, io: CliIo) {
  const components = await project.stackComponents(name);
  // Loaded here, not at the top: the AWS SDK is slow to load and most commands never need it.
  const { provisionStack } = await import('../../stacks/provision-stack.ts');
  const resources = await provisionStack(name, components);
  if (options.json) return printJson(io, { stack: name, resources });
  if (resources.length === 0) {
    io.stdout.write(`Stack ${name} has no AWS resources to provision (local artifacts, SQLite metadata).\n`);
    return;
  }
  const c = colors(io);
  const rows = [['STATUS', 'KIND', 'NAME']];
  for (const r of resources) rows.push([r.status === 'created' ? c.green(r.status) : r.status, r.kind, r.name]);
  io.stdout.write(table(rows));
}
