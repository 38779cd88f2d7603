/**
 * The environments (= CDK stages) Stackline deploys to, as typed plain data. Nothing here reads
 * the process environment or CDK context at import time: `infra/app.ts` passes both in.
 */
import { z } from 'zod';

/** The environments the CDK app knows. */
export const ENVIRONMENT_NAMES = ['dev', 'staging', 'prod'] as const;
export type EnvironmentName = (typeof ENVIRONMENT_NAMES)[number];

/** Everything one environment's stacks are built from. */
export interface StacklineEnvironment {
  /** The environment's name; also the Stackline stack name (`STACKLINE_STACK`, `stackline stack register <name>`). */
  name: EnvironmentName;
  /** AWS account; unset synthesizes an environment-agnostic template. */
  account?: string;
  /** AWS region; unset synthesizes an environment-agnostic template. */
  region?: string;
  /** DynamoDB tables are `<tablePrefix>-stacks`, `-runs`, `-artifacts`, `-models`. */
  tablePrefix: string;
  /** The artifact bucket; by default `<tablePrefix>-artifacts-<account>-<region>` (bucket names are global). */
  bucketName?: string;
  /** Key prefix of the artifact store inside the bucket (may be empty). */
  artifactPrefix: string;
  /**
   * The pipeline modules this environment serves (relative to the repository root): every pipeline
   * they export is compiled into a state machine, and all of them are bundled into one step runner.
   */
  pipelines: string[];
  /** `retain` keeps tables and bucket when the stack is deleted; `destroy` deletes them. */
  removal: 'retain' | 'destroy';
  /** `s3-managed` (SSE-S3, the default) or a customer-managed KMS key created in the data stack. */
  encryption: 's3-managed' | 'kms';
  /** Step-runner Lambda memory (MB) and timeout (seconds). */
  runner: { memoryMb: number; timeoutSeconds: number };
  /** Fan-outs wider than this become Distributed Maps (`STACKLINE_DISTRIBUTED_MAP_THRESHOLD`); unset keeps the runner's default. */
  distributedMapThreshold?: number;
  /**
   * Pipelines whose steps may promote to production in this environment (`STACKLINE_PROMOTERS`);
   * empty: none, production then moves only through a person. Set per environment in cdk.json.
   */
  promoters: string[];
  /** ECS steps: an existing VPC instead of a new one, and the task definition's default size. */
  ecs?: {
    vpc?: { vpcId: string; subnetIds: string[]; availabilityZones: string[] };
    cpu?: number;
    memoryMb?: number;
  };
}

/** The reference environment: the three modules of the reference scenario. */
const REFERENCE_PIPELINES = [
  'examples/reference/feature-engineering.ts',
  'examples/reference/training.ts',
  'examples/reference/inference.ts',
];

/** The built-in settings of each environment, before context overrides. */
export const DEFAULT_ENVIRONMENTS: Readonly<Record<EnvironmentName, Omit<StacklineEnvironment, 'account' | 'region'>>> =
  {
    dev: {
      name: 'dev',
      tablePrefix: 'stackline-dev',
      artifactPrefix: 'stackline',
      pipelines: REFERENCE_PIPELINES,
      removal: 'destroy',
      encryption: 's3-managed',
      runner: { memoryMb: 1024, timeoutSeconds: 300 },
      promoters: [],
    },
    staging: {
      name: 'staging',
      tablePrefix: 'stackline-staging',
      artifactPrefix: 'stackline',
      pipelines: REFERENCE_PIPELINES,
      removal: 'retain',
      encryption: 's3-managed',
      runner: { memoryMb: 2048, timeoutSeconds: 900 },
      promoters: [],
    },
    prod: {
      name: 'prod',
      tablePrefix: 'stackline-prod',
      artifactPrefix: 'stackline',
      pipelines: REFERENCE_PIPELINES,
      removal: 'retain',
      encryption: 's3-managed',
      runner: { memoryMb: 2048, timeoutSeconds: 900 },
      promoters: [],
    },
  };

/** What `-c stackline:environments='{"prod":{...}}'` or cdk.json may override per environment. */
const EnvironmentOverrides = z
  .object({
    account: z.string().regex(/^\d{12}$/, 'a 12-digit account id'),
    region: z.string().min(1),
    tablePrefix: z.string().regex(/^[a-z0-9][a-z0-9-]{0,200}$/, 'lower-case letters, digits and dashes'),
    bucketName: z.string().regex(/^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$/, 'a valid S3 bucket name'),
    artifactPrefix: z.string(),
    pipelines: z.array(z.string().min(1)).min(1, 'at least one pipeline module'),
    removal: z.enum(['retain', 'destroy']),
    encryption: z.enum(['s3-managed', 'kms']),
    runner: z.strictObject({
      memoryMb: z.number().int().min(128).max(10240),
      timeoutSeconds: z.number().int().min(1).max(900),
    }),
    distributedMapThreshold: z.number().int().min(1),
    promoters: z.array(z.string().regex(/^[A-Za-z0-9_-]+$/, 'pipeline names')),
    ecs: z.strictObject({
      vpc: z
        .strictObject({
          vpcId: z.string().regex(/^vpc-[0-9a-f]+$/, 'a VPC id (vpc-…)'),
          subnetIds: z
            .array(z.string().regex(/^subnet-[0-9a-f]+$/, 'subnet ids (subnet-…)'))
            .min(1)
            .max(16),
          availabilityZones: z.array(z.string().min(1)).min(1),
        })
        .refine((vpc) => vpc.availabilityZones.length === vpc.subnetIds.length, {
          message: 'one availability zone per subnet, in the same order',
        })
        .optional(),
      cpu: z.union([256, 512, 1024, 2048, 4096, 8192, 16384].map((n) => z.literal(n))).optional(),
      memoryMb: z.number().int().min(512).max(122880).optional(),
    }),
  })
  .partial()
  .strict();

const OverridesByEnvironment = z.partialRecord(z.enum(ENVIRONMENT_NAMES), EnvironmentOverrides);

/** Where {@link resolveEnvironments} takes its inputs from (CDK context and process environment, passed in). */
export interface EnvironmentSources {
  /** Context value `env`: one environment name, or unset for all of them. */
  selected?: unknown;
  /** Context value `stackline:environments`: per-environment overrides (object or JSON string). */
  overrides?: unknown;
  /** `CDK_DEFAULT_ACCOUNT` / `CDK_DEFAULT_REGION`: used where an environment sets no account or region. */
  defaultAccount?: string | undefined;
  defaultRegion?: string | undefined;
}

/**
 * The environments to synthesize: the selected one (or all), each with its context overrides
 * applied and account/region falling back to the CLI's defaults.
 *
 * @throws Error naming the unknown environment or each invalid override.
 * @example
 * resolveEnvironments({ selected: 'dev', defaultAccount: '123456789012', defaultRegion: 'eu-west-1' });
 * // [{ name: 'dev', tablePrefix: 'stackline-dev', removal: 'destroy', account: '123456789012', ... }]
 */
export function resolveEnvironments(sources: EnvironmentSources): StacklineEnvironment[] {
  const { selected } = sources;
  if (selected !== undefined && !ENVIRONMENT_NAMES.includes(selected as EnvironmentName)) {
    throw new Error(`Unknown environment ${JSON.stringify(selected)}: use -c env=${ENVIRONMENT_NAMES.join('|')}.`);
  }
  const raw = typeof sources.overrides === 'string' ? JSON.parse(sources.overrides) : (sources.overrides ?? {});
  const parsed = OverridesByEnvironment.safeParse(raw);
  if (!parsed.success) {
    const problems = parsed.error.issues.map((issue) => `${issue.path.join('.')}: ${issue.message}`);
    throw new Error(`Invalid "stackline:environments" context: ${problems.join('; ')}`);
  }
  const names = selected === undefined ? ENVIRONMENT_NAMES : [selected as EnvironmentName];
  return names.map((name) => {
    const overrides = parsed.data[name] ?? {};
    const account = overrides.account ?? sources.defaultAccount;
    const region = overrides.region ?? sources.defaultRegion;
    return {
      ...DEFAULT_ENVIRONMENTS[name],
      ...overrides,
      name,
      ...(account ? { account } : {}),
      ...(region ? { region } : {}),
    };
  });
}
