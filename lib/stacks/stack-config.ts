import { z } from 'zod';

/**
 * A stack's components. The `default` stack is all-local; AWS stacks (one per environment) use
 * S3, DynamoDB and Step Functions. Validated wherever a stack enters (CLI, API, registry).
 */
/**
 * Where a Step Functions stack runs `runner: 'ecs'` steps: the runner stack's `EcsRunner*` outputs
 * (`stackline deploy` registers them; `stack register --ecs-*` sets them by hand).
 */
export const EcsSettingsSchema = z.object({
  clusterArn: z.string().min(1),
  taskDefinitionArn: z.string().min(1),
  containerName: z.string().min(1),
  subnets: z.array(z.string().min(1)).min(1).max(16),
  securityGroups: z.array(z.string().min(1)).max(5).optional(),
});

export const OrchestratorSchema = z.discriminatedUnion('type', [
  z.object({ type: z.literal('local'), concurrency: z.number().int().min(1).max(256).optional() }),
  z.object({
    type: z.literal('step-functions'),
    region: z.string().optional(),
    endpoint: z.url().optional(),
    roleArn: z.string().optional(),
    stateMachinePrefix: z.string().optional(),
    ecs: EcsSettingsSchema.optional(),
  }),
]);

export const ArtifactStoreSchema = z.discriminatedUnion('type', [
  z.object({ type: z.literal('local'), path: z.string().optional() }),
  z.object({
    type: z.literal('s3'),
    bucket: z.string().min(3),
    prefix: z.string().default(''),
    region: z.string().optional(),
    endpoint: z.url().optional(),
    serverSideEncryption: z.enum(['AES256', 'aws:kms']).optional(),
    kmsKeyId: z.string().optional(),
  }),
]);

export const MetadataStoreSchema = z.discriminatedUnion('type', [
  z.object({ type: z.literal('sqlite'), path: z.string().optional() }),
  z.object({
    type: z.literal('dynamodb'),
    tablePrefix: z.string().min(1),
    region: z.string().optional(),
    endpoint: z.url().optional(),
  }),
]);

export const StepRunnerSchema = z.discriminatedUnion('type', [
  z.object({ type: z.literal('in-process') }),
  z.object({ type: z.literal('lambda'), functionName: z.string().optional() }),
  z.object({ type: z.literal('ecs'), cluster: z.string().optional(), taskDefinition: z.string().optional() }),
]);

export const StackComponentsSchema = z.object({
  orchestrator: OrchestratorSchema.default({ type: 'local' }),
  artifactStore: ArtifactStoreSchema.default({ type: 'local' }),
  metadataStore: MetadataStoreSchema.default({ type: 'sqlite' }),
  stepRunner: StepRunnerSchema.default({ type: 'in-process' }),
  containerRegistry: z.object({ uri: z.string() }).optional(),
  /**
   * Pipelines whose steps may promote to `production` on this stack (a promotion gate), by name;
   * `*` allows every pipeline. Absent: none may (staging and archived stay open to them).
   */
  promoters: z.array(z.string().min(1)).optional(),
});

export type StackComponents = z.output<typeof StackComponentsSchema>;

export const DEFAULT_STACK_NAME = 'default';

export { STACK_NAME } from '../dsl/names.ts';

/**
 * The local default stack: in-process, on this machine, for one user; its pipelines may promote to
 * production (`promoters: ['*']`). Shared stacks name theirs explicitly.
 */
export function defaultStackComponents(): StackComponents {
  return StackComponentsSchema.parse({ promoters: ['*'] });
}
