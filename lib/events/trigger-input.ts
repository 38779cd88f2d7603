/**
 * The execution input a schedule or an EventBridge rule sends to a pipeline's state machine, and
 * the run id an event-started run gets. Shared by the CDK app (which renders the input), the step
 * runner's `start-run` (which records and de-duplicates it) and the execution-status handler.
 */
import { createHash } from 'node:crypto';
import { z } from 'zod';
import type { RunTrigger } from '../dsl/triggers.ts';

/** `trigger` in the execution input: what started the run. */
export const RunTriggerSchema = z.object({
  kind: z.enum(['schedule', 's3', 'event', 'stackline']),
  name: z.string().min(1),
  id: z.string().min(1),
});

/**
 * The run id of the run `trigger` starts for `pipeline`: derived from the event (or Scheduler
 * execution) id, so a redelivered event maps to the run its first delivery created and starts
 * nothing new. Same shape as other run ids (`run_` + 26 lower-case characters).
 *
 * @example
 * triggeredRunId('iris_inference', { kind: 'stackline', name: 'stackline-dev-iris_inference-0', id: '6f1c…' });
 */
export function triggeredRunId(pipeline: string, trigger: RunTrigger): string {
  const digest = createHash('sha256').update(`${pipeline}\n${trigger.kind}\n${trigger.name}\n${trigger.id}`).digest();
  // Crockford base32 like the ULIDs of other run ids.
  const alphabet = '0123456789abcdefghjkmnpqrstvwxyz';
  let out = '';
  for (let i = 0; i < 26; i++) out += alphabet[digest[i]! & 31];
  return `run_${out}`;
}
