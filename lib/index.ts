/**
 * Stackline's public API: declare steps and pipelines, run them, save and load artifacts.
 * @packageDocumentation
 */
export { step } from './dsl/step.ts';
export type { StepDefinition, StepFunction, StepSpec } from './dsl/step.ts';
export { pipeline, isPipelineDefinition } from './dsl/pipeline.ts';
export type { PipelineConfig, PipelineDefinition, PipelineModel } from './dsl/pipeline.ts';
export type { PipelineGraph, StepNode } from './dsl/builder.ts';
export type * from './dsl/types.ts';
export * from './errors.ts';
export type * from './metadata/types.ts';
export type { MetadataStore } from './metadata/metadata-store.ts';
export type { ArtifactStore, StoredBlob } from './artifacts/artifact-store.ts';
export type { Materializer } from './artifacts/materializer.ts';
