/**
 * Stackline's public API: declare steps and pipelines, run them, save and load artifacts.
 * @packageDocumentation
 */

export type { RemoteOpenOptions, RemoteStackline } from './api/remote-stackline.ts';
export type { ArtifactStore, StoredBlob } from './artifacts/artifact-store.ts';
export { registerMaterializer } from './artifacts/custom-materializers.ts';
export type { MaterializedValue, Materializer, MaterializerContext } from './artifacts/materializer.ts';
export type { SaveArtifactOptions } from './client.ts';
export { Stackline } from './client.ts';
export type { PipelineGraph, StepNode } from './dsl/builder.ts';
export { externalArtifact } from './dsl/external-artifact.ts';
export type { PipelineConfig, PipelineDefinition, PipelineModel } from './dsl/pipeline.ts';
export { isPipelineDefinition, pipeline } from './dsl/pipeline.ts';
export type { StepDefinition, StepFunction, StepSpec } from './dsl/step.ts';
export { step } from './dsl/step.ts';
export type {
  EventTrigger,
  ModelStageChangedTrigger,
  ParameterMapping,
  ParameterSource,
  PipelineTrigger,
  RunCompletedTrigger,
  RunTrigger,
  S3Trigger,
  ScheduleTrigger,
} from './dsl/triggers.ts';
export type * from './dsl/types.ts';
export * from './errors.ts';
export type { MetadataStore } from './metadata/metadata-store.ts';
export { PipelineNotPromoterError, PromotionRefusedError, StageHeldError } from './metadata/promotion-rules.ts';
export type * from './metadata/types.ts';
export type { VersionComparison } from './models/compare.ts';
export { compareModelVersions } from './models/compare.ts';
export type { RunEvent, RunOptions, RunResult } from './runtime/local-orchestrator.ts';
