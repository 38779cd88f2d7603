import { z } from 'zod';
import { RunTriggerSchema } from '../events/trigger-input.ts';

/**
 * What the step runner (Lambda handler, ECS entry point) is asked to do. Only identifiers travel:
 * parameters, inputs and outputs live in the metadata and artifact stores, so a state machine's
 * payload stays a few hundred bytes whatever the pipeline moves.
 *
 * The compiled state machine calls, in order: `start-run` once; `run-step` per step (and per item
 * of a fan-out, with `mapIndex`, after `plan-map` and before `collect-map`); `finish-run` at the
 * end, with `failed` and the error from a Catch when anything failed.
 */
const base = { pipeline: z.string().min(1) };

export const StartRunRequest = z.object({
  action: z.literal('start-run'),
  ...base,
  parameters: z.record(z.string(), z.unknown()).default({}),
  /** Provided by the CLI when it created the run record itself; otherwise the runner creates one. */
  runId: z.string().optional(),
  /** `$$.Execution.Id`, recorded on the run. */
  executionArn: z.string().optional(),
  tags: z.array(z.string()).default([]),
  /**
   * The execution input (`$`): when the CLI started the execution it carries the run's options,
   * which `start-run` records on the run so every step honours them.
   */
  input: z
    .object({
      tags: z.array(z.string()).optional(),
      cache: z.boolean().optional(),
      stepCache: z.record(z.string(), z.boolean()).optional(),
      /** Set by schedules and EventBridge rules: what started the run (one run per trigger id). */
      trigger: RunTriggerSchema.optional(),
    })
    .optional(),
});

export const RunStepRequest = z.object({
  action: z.literal('run-step'),
  ...base,
  runId: z.string().min(1),
  stepId: z.string().min(1),
  /** For fan-out steps: which item of the mapped list this invocation handles. */
  mapIndex: z.number().int().min(0).optional(),
  /** `$$.State.RetryCount`-style attempt counter from the state machine, for logs only. */
  attempt: z.number().int().min(0).optional(),
});

export const PlanMapRequest = z.object({
  action: z.literal('plan-map'),
  ...base,
  runId: z.string().min(1),
  stepId: z.string().min(1),
});
export const CollectMapRequest = z.object({
  action: z.literal('collect-map'),
  ...base,
  runId: z.string().min(1),
  stepId: z.string().min(1),
});

export const FinishRunRequest = z.object({
  action: z.literal('finish-run'),
  ...base,
  runId: z.string().min(1),
  status: z.enum(['completed', 'failed']),
  /** The `{ Error, Cause }` object a Catch puts in the state. */
  error: z.object({ Error: z.string().optional(), Cause: z.string().optional() }).optional(),
});

export const StepRunnerRequest = z.discriminatedUnion('action', [
  StartRunRequest,
  RunStepRequest,
  PlanMapRequest,
  CollectMapRequest,
  FinishRunRequest,
]);
export type StepRunnerRequest = z.input<typeof StepRunnerRequest>;

export const StartRunResponse = z.object({ runId: z.string() });
export const RunStepResponse = z.object({
  runId: z.string(),
  stepId: z.string(),
  stepRunId: z.string(),
  status: z.enum(['completed', 'cached']),
});
/** Inline Map: `items` are item indexes. Distributed Map (wide fan-outs): an S3 JSON array of indexes. */
export const PlanMapResponse = z.union([
  z.object({ count: z.number().int().min(0), items: z.array(z.number().int()) }),
  z.object({ count: z.number().int().min(0), itemsBucket: z.string(), itemsKey: z.string() }),
]);
export const CollectMapResponse = z.object({ stepRunId: z.string(), status: z.enum(['completed', 'cached']) });
export const FinishRunResponse = z.object({ runId: z.string(), status: z.string() });
