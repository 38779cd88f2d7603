/**
 * The execution-status Lambda's entry: its DynamoDB metadata store (publishing platform events
 * when `STACKLINE_EVENT_BUS` is set) is made from the environment the CDK app sets, at the first
 * invocation.
 */
import { z } from 'zod';
import { withPlatformEvents } from '../../lib/events/platform-events.ts';
import { DynamoDbMetadataStore } from '../../lib/metadata/dynamodb/dynamodb-metadata-store.ts';
import { tableNamesFor } from '../../lib/metadata/dynamodb/table-definitions.ts';
import type { MetadataStore } from '../../lib/metadata/metadata-store.ts';
import { withStoreRules } from '../../lib/metadata/store-rules.ts';
import { createDynamoDbClient } from '../../lib/stacks/aws-clients.ts';
import { createExecutionStatusHandler } from './lambda.ts';

const ExecutionStatusEnvironment = z.object({
  STACKLINE_STACK: z.string().min(1),
  STACKLINE_TABLE_PREFIX: z.string().min(1),
  STACKLINE_EVENT_BUS: z.string().min(1).optional(),
  AWS_REGION: z.string().min(1),
});

let metadata: MetadataStore | undefined;

function resolveMetadata(): MetadataStore {
  if (metadata) return metadata;
  const config = ExecutionStatusEnvironment.parse(process.env);
  const client = createDynamoDbClient(config.STACKLINE_STACK, { region: config.AWS_REGION });
  metadata = withPlatformEvents(
    withStoreRules(new DynamoDbMetadataStore({ client, tables: tableNamesFor(config.STACKLINE_TABLE_PREFIX) })),
    config,
  );
  return metadata;
}

export const handler = createExecutionStatusHandler(resolveMetadata);
