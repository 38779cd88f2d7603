/**
 * Primary keys of every item kind, in one place (the layout is described in
 * `docs/dynamodb-design.md`). Items that must be found by id but live under another partition have
 * an immutable pointer item keyed by the id, written in the same transaction as the item.
 */
import { padNumber } from './support.ts';

export const keys = {
  // runs table
  run: (id: string) => ({ pk: `RUN#${id}`, sk: 'RUN' }),
  step: (runId: string, stepRunId: string) => ({ pk: `RUN#${runId}`, sk: `STEP#${stepRunId}` }),
  stepPointer: (stepRunId: string) => ({ pk: `STEP#${stepRunId}`, sk: 'STEP' }),
  consumer: (artifactVersionId: string, stepRunId: string) => ({
    pk: `CONSUMER#${artifactVersionId}`,
    sk: `STEP#${stepRunId}`,
  }),
  // artifacts table
  artifactSummary: (name: string) => ({ pk: `ARTIFACT#${name}`, sk: 'SUMMARY' }),
  artifactVersion: (name: string, version: number) => ({ pk: `ARTIFACT#${name}`, sk: `V#${padNumber(version)}` }),
  artifactVersionPointer: (id: string) => ({ pk: `AV#${id}`, sk: 'AV' }),
  /**
   * An output of one fan-out item, `ARTIFACT#<name>.items / I#<stepRunId>#<output>`: keyed by its
   * step run rather than numbered from the name's counter, which a thousand items completing at
   * once would all contend on. Its `version` is the item's number (index + 1).
   */
  itemVersion: (name: string, stepRunId: string, output: string) => ({
    pk: `ARTIFACT#${name}`,
    sk: `I#${stepRunId}#${output}`,
  }),
  /** Where the version a pointer (`AV#<id>` item) names lives. */
  versionOf: (pointer: Record<string, unknown>) =>
    typeof pointer.versionSk === 'string'
      ? { pk: `ARTIFACT#${String(pointer.name)}`, sk: pointer.versionSk }
      : keys.artifactVersion(String(pointer.name), Number(pointer.version)),
  // models table
  model: (name: string) => ({ pk: `MODEL#${name}`, sk: 'MODEL' }),
  modelVersion: (model: string, number: number) => ({ pk: `MODEL#${model}`, sk: `V#${padNumber(number)}` }),
  modelVersionPointer: (id: string) => ({ pk: `MV#${id}`, sk: 'MV' }),
  versionName: (model: string, name: string) => ({ pk: `MODEL#${model}`, sk: `NAME#${name}` }),
  alias: (model: string, alias: string) => ({ pk: `MODEL#${model}`, sk: `ALIAS#${alias}` }),
  // stages table: the audit trail, apart so IAM can deny the step runner any write to it
  stageHolder: (model: string, stage: string) => ({ pk: `MODEL#${model}`, sk: `STAGE#${stage}` }),
  /** The model's `historySeq` counter, bumped in the same transaction as each history item. */
  historyCounter: (model: string) => ({ pk: `MODEL#${model}`, sk: 'HISTORY' }),
  /** Numbered by the model's `historySeq` counter, bumped in the same transaction: commit order. */
  stageChange: (model: string, seq: number) => ({ pk: `MODEL#${model}`, sk: `H#${padNumber(seq)}` }),
} as const;
