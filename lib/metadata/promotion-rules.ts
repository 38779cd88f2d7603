import { ConflictError, ValidationError } from '../errors.ts';
import type { PromoteOptions } from './metadata-store.ts';
import type { Metadata, ModelArtifactLink, ModelStage, PromotionGate, RunStatus } from './types.ts';

/**
 * What a metadata store may let into a stage, written once for every adapter (STYLE.md guideline 11).
 * An adapter reads the facts inside its transaction (SQLite: `BEGIN IMMEDIATE`; DynamoDB: the items
 * it then conditions its TransactWriteItems on), calls {@link checkPromotion}, and writes only when
 * it returns. The rules, in the order they are checked:
 *
 * 1. **Compare-and-set.** With `expectedHolder`, the stage must be held by exactly that version
 *    (`null`: free); otherwise {@link StageHeldError} names the actual holder.
 * 2. **Policy, for `production` only** (`staging` is where candidates are tried; `archived` is always
 *    allowed). The version's producing run (its first linked run) must be `completed`, or be the
 *    run making the change and still `running` (a promotion gate step); it must link an artifact in
 *    role `model`; and when the model has a {@link PromotionGate}, its metric must be a number that
 *    beats the holder's (a holder without a numeric value is beaten by any number). Otherwise
 *    {@link PromotionRefusedError} names the rule. `force` skips none of these: it only displaces a
 *    holder nobody named.
 * 3. **Exclusive stages.** A held `staging`/`production` is taken only with `force` or when the caller
 *    named the holder in `expectedHolder`; the holder then moves to `archived`.
 */

/** The stage is held by another version than the caller expected (or than the caller may displace). */
export class StageHeldError extends ConflictError {}

/** A promotion broke a rule of the promotion policy (producing run, model artifact, gate). */
export class PromotionRefusedError extends ConflictError {}

/** A pipeline step tried to promote to production on a stack whose `promoters` do not name its pipeline. */
export class PipelineNotPromoterError extends PromotionRefusedError {}

/** What the rules need to know, read by the adapter inside its transaction. */
export interface PromotionFacts {
  model: string;
  version: number;
  stage: ModelStage;
  gate: PromotionGate | undefined;
  candidate: { artifacts: readonly ModelArtifactLink[]; metadata: Metadata; runIds: readonly string[] };
  /** The candidate's first linked run, `undefined` when it has none. */
  producingRun: { id: string; status: RunStatus } | undefined;
  /** The version holding `stage` now (exclusive stages only). */
  holder: { number: number; metadata: Metadata } | undefined;
  options: PromoteOptions;
}

/** The run whose status decides the policy: the first run linked to the version (the one that made it). */
export function producingRunId(candidate: { runIds: readonly string[] }): string | undefined {
  return candidate.runIds[0];
}

/** Whether the policy (rule 2) applies to a move into `stage`: adapters read its facts only then. */
export function policyApplies(stage: ModelStage): boolean {
  return stage === 'production';
}

/**
 * Applies the rules above. Returns whether the holder is displaced (moves to `archived`); throws
 * {@link StageHeldError} or {@link PromotionRefusedError} otherwise.
 */
export function checkPromotion(facts: PromotionFacts): { displaceHolder: boolean } {
  const { model, version, stage, holder, options } = facts;
  const holderNumber = holder?.number ?? null;
  if (options.expectedHolder !== undefined && options.expectedHolder !== holderNumber) {
    const expected = options.expectedHolder === null ? 'free' : `held by version ${options.expectedHolder}`;
    const actual = holderNumber === null ? 'is free' : `is held by version ${holderNumber}`;
    throw new StageHeldError(
      `Model "${model}" stage "${stage}" ${actual}, not ${expected} as expected; someone changed it first: read the holder again and decide again before promoting version ${version}`,
      {
        context: { model, stage, holder: holderNumber, expectedHolder: options.expectedHolder, version },
      },
    );
  }
  if (policyApplies(stage)) checkPolicy(facts);
  if (holder === undefined) return { displaceHolder: false };
  if (options.force !== true && options.expectedHolder === undefined) {
    throw new StageHeldError(
      `Model "${model}" version ${holder.number} holds stage "${stage}"; archive it first, pass force to archive it while promoting version ${version}, or pass expectedHolder ${holder.number}`,
      { context: { model, version, stage, holder: holder.number } },
    );
  }
  return { displaceHolder: true };
}

function checkPolicy({ model, version, stage, gate, candidate, producingRun, holder, options }: PromotionFacts): void {
  const refuse = (why: string, fix: string, context: Record<string, unknown> = {}): never => {
    throw new PromotionRefusedError(`Model "${model}" version ${version} cannot go to ${stage}: ${why}; ${fix}`, {
      context: { model, version, stage, holder: holder?.number ?? null, ...context },
    });
  };
  if (producingRun === undefined) {
    refuse('it has no producing run', 'only versions made by a pipeline run (or linked to one) can be promoted');
  } else if (
    producingRun.status !== 'completed' &&
    !(producingRun.status === 'running' && producingRun.id === options.runId)
  ) {
    refuse(
      `its producing run "${producingRun.id}" is ${producingRun.status}, not completed`,
      'promote it once the run has completed',
      { runId: producingRun.id, runStatus: producingRun.status },
    );
  }
  if (!candidate.artifacts.some((link) => link.role === 'model')) {
    refuse('it links no artifact in role "model"', 'link the trained model artifact (modelRole: "model") first');
  }
  if (gate === undefined) return;
  const value = candidate.metadata[gate.metric];
  if (typeof value !== 'number' || !Number.isFinite(value)) {
    refuse(
      `the model's promotion gate compares "${gate.metric}" and this version has no numeric "${gate.metric}" metadata`,
      `log it on the version (logMetadata) first`,
      { metric: gate.metric },
    );
  }
  const held = holder?.metadata[gate.metric];
  if (holder === undefined || typeof held !== 'number' || !Number.isFinite(held)) return;
  const beats = gate.direction === 'max' ? (value as number) > held : (value as number) < held;
  if (!beats) {
    refuse(
      `its ${gate.metric} ${value} does not beat version ${holder.number}'s ${held} (${gate.direction === 'max' ? 'higher' : 'lower'} is better)`,
      'promotion to production needs a better model, or change the gate',
      { metric: gate.metric, value, holderValue: held },
    );
  }
}

const GATE_PATTERN = /^([A-Za-z_][\w.-]*):(max|min)$/;

/**
 * Parses `metric:max|min` (the CLI's `--gate`) into a {@link PromotionGate}.
 *
 * @example
 * parsePromotionGate('accuracy:max'); // { metric: 'accuracy', direction: 'max' }
 */
export function parsePromotionGate(text: string): PromotionGate {
  const match = GATE_PATTERN.exec(text);
  if (match === null) {
    throw new ValidationError(
      `Promotion gate "${text}" is not "<metric>:max" or "<metric>:min" (e.g. accuracy:max, loss:min)`,
      { context: { gate: text } },
    );
  }
  return { metric: match[1]!, direction: match[2] as PromotionGate['direction'] };
}

/** Validates a gate given as data (Stackline.createModel, the API): the same rules as the CLI flag. */
export function assertPromotionGate(gate: PromotionGate): PromotionGate {
  return parsePromotionGate(`${gate.metric}:${gate.direction}`);
}
