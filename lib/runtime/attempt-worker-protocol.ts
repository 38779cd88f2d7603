import * as errors from '../errors.ts';
import { StacklineError } from '../errors.ts';
import * as promotionErrors from '../metadata/promotion-rules.ts';

/**
 * The messages between an attempt's parent (the step executor) and the worker thread that runs an
 * isolated attempt (`isolation: 'worker'`). Values cross by structured clone; objects with methods
 * (the model control plane, a loaded model version) cross as handles whose calls the parent runs.
 */

/** What the worker is started with (`workerData`). */
export interface AttemptWorkerData {
  /** The file that defined the step; the worker imports it to find the step. */
  moduleFile: string;
  /** What the worker imports for it: its compiled copy when the CLI compiled it (lib/cli/precompile.ts). */
  runFile: string;
  /** Compiled copy → source pairs, so code in the worker knows the files it was compiled from. */
  compiledSources: Array<[string, string]>;
  stepName: string;
  /** Disambiguates steps defined twice under one name. */
  codeHash: string;
  params: unknown;
  inputs: Record<string, unknown>;
  /** Inputs that were Buffers (structured clone delivers them as Uint8Arrays). */
  bufferInputs: string[];
  /** The attempt's scratch directory: created by the worker at first use, removed by the parent. */
  scratchDir: string;
  context: {
    runId: string;
    stepRunId: string;
    stepId: string;
    pipeline: string;
    attempt: number;
    model?: Remote;
    runModelVersion?: Remote;
    models: Remote;
  };
}

/** An object with methods, as the worker sees it: its data fields and a handle for its methods. */
export interface Remote {
  handle: number;
  data: Record<string, unknown>;
  methods: string[];
}

/** A thrown error, as it crosses (class name, code and context survive; the class is rebuilt). */
export interface CrossingError {
  name: string;
  message: string;
  stack?: string;
  code?: string;
  context?: Record<string, unknown>;
}

export type WorkerToParent =
  | { type: 'started' }
  | { type: 'log'; message: string }
  | { type: 'metadata'; values: Record<string, unknown> }
  | { type: 'artifact-metadata'; output: string; values: Record<string, unknown> }
  | { type: 'call'; id: number; handle: number; method: string; args: unknown[] }
  | { type: 'returned'; value: unknown; bufferOutputs: string[] }
  | { type: 'threw'; error: CrossingError };

export type ParentToWorker =
  | { type: 'result'; id: number; value: unknown }
  | { type: 'error'; id: number; error: CrossingError }
  | { type: 'abort'; reason: CrossingError };

/** `{ __remote }` marks a handle inside a call's result. */
export interface RemoteMarker {
  __remote: Remote;
}

export function toCrossingError(error: unknown): CrossingError {
  if (!(error instanceof Error)) return { name: 'Error', message: String(error) };
  const { code, context } = error as { code?: unknown; context?: unknown };
  return {
    name: error.name,
    message: error.message,
    ...(error.stack ? { stack: error.stack } : {}),
    ...(typeof code === 'string' ? { code } : {}),
    ...(context && typeof context === 'object' ? { context: cloneable(context as Record<string, unknown>) } : {}),
  };
}

function cloneable(context: Record<string, unknown>): Record<string, unknown> {
  try {
    return structuredClone(context);
  } catch {
    return {};
  }
}

type ErrorClass = new (message: string, options?: { cause?: unknown; context?: Record<string, unknown> }) => Error;

const ERROR_CLASSES = new Map(
  ([...Object.values(errors), ...Object.values(promotionErrors)] as unknown[])
    .filter((value): value is ErrorClass => typeof value === 'function' && value.prototype instanceof StacklineError)
    .map((type) => [type.name, type]),
);

/**
 * The error on the other side of the boundary, as the class it was thrown as when that is one of
 * Stackline's (so `instanceof NonRetriableError` and `StageHeldError` still work); otherwise an
 * Error with the same name and message.
 */
export function fromCrossingError(crossing: CrossingError): Error {
  const known = ERROR_CLASSES.get(crossing.name);
  const error = known
    ? new known(crossing.message, crossing.context ? { context: crossing.context } : {})
    : Object.assign(new Error(crossing.message), { name: crossing.name });
  if (crossing.stack) error.stack = crossing.stack;
  return error;
}
