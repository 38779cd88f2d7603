/**
 * The target of the EventBridge rule on Step Functions execution status changes: ends the run of
 * an execution that stopped, timed out or failed outside the CLI. All logic lives in
 * `lib/orchestrators/execution-status-change.ts`; this file only adapts the invocation.
 */
import middy from '@middy/core';
import type { MetadataStore } from '../../lib/metadata/metadata-store.ts';
import { endRunForExecution } from '../../lib/orchestrators/execution-status-change.ts';

/**
 * @example
 * export const handler = createExecutionStatusHandler(() => awsStepRunnerDeps([]).stores.metadata);
 */
export function createExecutionStatusHandler(resolveMetadata: () => MetadataStore) {
  return middy<unknown, unknown>().handler(async (event) => endRunForExecution(event, resolveMetadata()));
}
