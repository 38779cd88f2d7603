/**
 * What names may look like. Step names, invocation ids and pipeline names become parts of artifact
 * names, Step Functions state names and cache keys; artifact names become S3/DynamoDB key parts.
 */

/** Steps, step invocation ids and pipelines: letters, digits, `_` and `-`, at most 80. */
export const IDENTIFIER = /^[A-Za-z_][A-Za-z0-9_-]{0,79}$/;

/** Artifacts: also `.` and `:` (`train.model`, `iris:holdout`), at most 200. */
export const ARTIFACT_NAME = /^[A-Za-z0-9_][A-Za-z0-9_.:-]{0,199}$/;
