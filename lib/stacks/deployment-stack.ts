/**
 * The team-wide stack registry of an AWS deployment: its DynamoDB stacks table, read through the API.
 * The API writes the record of the stack it serves there (once per cold start, only when missing or
 * changed), so `stackline login <api-url>` followed by `stackline stack list` shows it with no other
 * setup; stacks registered by hand in the same table are listed beside it.
 */
import type { StackRepository } from '../metadata/metadata-store.ts';
import type { JsonValue, StackRecord } from '../metadata/types.ts';
import { StackComponentsSchema } from './stack-config.ts';

/** What the API's environment says about the stack it serves (see `ApiLambdaEnvironment`). */
export interface DeploymentStackConfig {
  STACKLINE_STACK: string;
  STACKLINE_ARTIFACT_BUCKET: string;
  STACKLINE_ARTIFACT_PREFIX: string;
  STACKLINE_TABLE_PREFIX: string;
  STACKLINE_PROMOTERS: readonly string[];
  STACKLINE_STATE_MACHINE_ARN_PREFIX?: string | undefined;
  AWS_REGION: string;
}

/** The record of the stack an API deployment serves: Step Functions, Lambda, S3 and DynamoDB in its region. */
export function deploymentStackRecord(config: DeploymentStackConfig): Omit<StackRecord, 'createdAt' | 'updatedAt'> {
  const region = config.AWS_REGION;
  const stateMachinePrefix = config.STACKLINE_STATE_MACHINE_ARN_PREFIX?.split(':stateMachine:')[1];
  const components = StackComponentsSchema.parse({
    orchestrator: { type: 'step-functions', region, ...(stateMachinePrefix ? { stateMachinePrefix } : {}) },
    stepRunner: { type: 'lambda', functionName: `${config.STACKLINE_TABLE_PREFIX}-step-runner` },
    artifactStore: {
      type: 's3',
      bucket: config.STACKLINE_ARTIFACT_BUCKET,
      prefix: config.STACKLINE_ARTIFACT_PREFIX,
      region,
    },
    metadataStore: { type: 'dynamodb', tablePrefix: config.STACKLINE_TABLE_PREFIX, region },
    promoters: [...config.STACKLINE_PROMOTERS],
  });
  return {
    name: config.STACKLINE_STACK,
    description: `AWS environment ${config.STACKLINE_STACK} (registered by its API)`,
    components: JSON.parse(JSON.stringify(components)) as Record<string, JsonValue>,
    tags: [`environment:${config.STACKLINE_STACK}`],
  };
}

/**
 * `stacks` that holds `record` before its first read: it is put once (when missing or different), so
 * the table needs no deploy-time writer and a redeploy with new settings updates it.
 */
export function withDeploymentStack(
  stacks: StackRepository,
  record: Omit<StackRecord, 'createdAt' | 'updatedAt'>,
): StackRepository {
  let ensured: Promise<void> | undefined;
  const ensure = () => {
    ensured ??= (async () => {
      const found = await stacks.find(record.name);
      if (found && JSON.stringify(found.components) === JSON.stringify(record.components)) return;
      await stacks.put(record);
    })().catch((error: unknown) => {
      ensured = undefined;
      throw error;
    });
    return ensured;
  };
  return {
    put: (stack) => stacks.put(stack),
    delete: (name) => stacks.delete(name),
    get: (name) => ensure().then(() => stacks.get(name)),
    find: (name) => ensure().then(() => stacks.find(name)),
    list: (filter) => ensure().then(() => stacks.list(filter)),
  };
}
