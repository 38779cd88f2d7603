import { randomBytes } from 'node:crypto';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { pathToFileURL } from 'node:url';
import { Worker } from 'node:worker_threads';
import { compiledFileOf, compiledSources } from '../code-hash/compiled-sources.ts';
import type { StepNode } from '../dsl/builder.ts';
import { stepDefinitionFile } from '../dsl/step.ts';
import type { StepContext } from '../dsl/types.ts';
import { NonRetriableError, StepFailedError, StepTimeoutError } from '../errors.ts';
import {
  type AttemptWorkerData,
  fromCrossingError,
  type ParentToWorker,
  type Remote,
  toCrossingError,
  type WorkerToParent,
} from './attempt-worker-protocol.ts';

/**
 * Runs one attempt of a step in a worker thread (the step's `isolation: 'worker'`), so that the
 * attempt can be stopped for real: {@link IsolatedAttempt.stop} terminates the thread, and once it
 * resolves the attempt can no longer log, record metadata, call the model control plane or touch
 * its scratch directory. The parent keeps everything else: it loaded the inputs, it validates and
 * stores the outputs, it renews the run's lease (so a CPU-bound step no longer starves the heartbeat).
 */
export interface IsolatedAttempt {
  /** Settles with what the step returned, or with what it threw. */
  readonly result: Promise<unknown>;
  /**
   * Resolves when the step's function starts (its module imported): the step's `timeoutMs` counts
   * from here, so a worker's start-up is not charged to the step.
   */
  readonly started: Promise<void>;
  /** Terminates the worker (if still running); resolves once its thread has stopped. */
  stop(): Promise<void>;
}

/** The parent-side context the worker's calls are applied to (already fenced by the executor). */
export type ParentContext = Omit<StepContext, 'signal' | 'tmpDir'>;

const SCRATCH_ROOT = join(tmpdir(), 'stackline');
/** How long a worker may take to import the step's module and start it. */
export const WORKER_START_LIMIT_MS = 60_000;

/** A fresh scratch directory path for an isolated attempt (the worker creates it at first use). */
export function isolatedScratchDir(stepId: string): string {
  return join(SCRATCH_ROOT, `${stepId}-${randomBytes(6).toString('hex')}`);
}

/**
 * Starts the attempt. Refuses (NonRetriableError) what cannot cross into a worker: a step whose
 * defining module is unknown, or stream inputs.
 */
export function startIsolatedAttempt(
  node: StepNode,
  inputs: Record<string, unknown>,
  context: ParentContext,
  scratchDir: string,
): IsolatedAttempt {
  const moduleFile = stepDefinitionFile(node.spec);
  if (moduleFile === undefined) {
    throw new NonRetriableError(
      `Step "${node.id}" has isolation: 'worker', but the module that defines it is unknown; define it in a module file.`,
      { context: { step: node.id } },
    );
  }
  for (const [name, value] of Object.entries(inputs)) {
    if (value instanceof Readable) {
      throw new NonRetriableError(
        `Step "${node.id}" has isolation: 'worker', but its input "${name}" is a stream, which cannot cross into a worker. ` +
          "Use the 'file' materializer for it, or drop isolation.",
        { context: { step: node.id, input: name } },
      );
    }
  }
  const handles = new Map<number, object>();
  const remote = (target: object): Remote => {
    const handle = handles.size;
    handles.set(handle, target);
    const data: Record<string, unknown> = {};
    const methods: string[] = [];
    for (const key of methodAndDataKeys(target)) {
      const value = (target as Record<string, unknown>)[key];
      if (typeof value === 'function') methods.push(key);
      else data[key] = value;
    }
    return { handle, data, methods };
  };
  const workerData: AttemptWorkerData = {
    moduleFile,
    runFile: compiledFileOf(moduleFile) ?? moduleFile,
    compiledSources: compiledSources(),
    stepName: node.spec.name,
    codeHash: node.spec.codeHash,
    params: node.params,
    inputs,
    bufferInputs: Object.keys(inputs).filter((name) => Buffer.isBuffer(inputs[name])),
    scratchDir,
    context: {
      runId: context.runId,
      stepRunId: context.stepRunId,
      stepId: context.stepId,
      pipeline: context.pipeline,
      attempt: context.attempt,
      ...(context.model ? { model: remote(context.model) } : {}),
      ...(context.runModelVersion ? { runModelVersion: remote(context.runModelVersion) } : {}),
      models: remote(context.models),
    },
  };
  const worker = new Worker(WORKER_ENTRY, { workerData, ...WORKER_OPTIONS });
  let stopped = false;
  const send = (message: ParentToWorker) => {
    if (!stopped) worker.postMessage(message);
  };
  let markStarted!: () => void;
  const started = new Promise<void>((resolve) => {
    markStarted = resolve;
  });
  const result = new Promise<unknown>((resolve, reject) => {
    const startLimit = setTimeout(() => {
      reject(
        new StepTimeoutError(
          `Step "${node.id}": its worker did not start the step within ${WORKER_START_LIMIT_MS} ms (importing ${moduleFile}).`,
          { context: { step: node.id, file: moduleFile } },
        ),
      );
    }, WORKER_START_LIMIT_MS);
    started.then(() => clearTimeout(startLimit));
    worker.on('exit', () => clearTimeout(startLimit));
    worker.on('message', (message: WorkerToParent) => {
      // After the attempt has ended, the executor's callbacks refuse: whatever was still in flight is dropped.
      try {
        switch (message.type) {
          case 'started':
            markStarted();
            break;
          case 'log':
            context.log(message.message);
            break;
          case 'metadata':
            context.logMetadata(message.values as never);
            break;
          case 'artifact-metadata':
            context.logArtifactMetadata(message.output, message.values as never);
            break;
          case 'call':
            void answer(message);
            break;
          case 'returned':
            resolve(withBuffers(message.value, message.bufferOutputs));
            break;
          case 'threw':
            reject(fromCrossingError(message.error));
            break;
        }
      } catch {
        // the attempt has ended
      }
    });
    worker.on('error', reject);
    worker.on('exit', (code) => {
      if (!stopped)
        reject(
          new StepFailedError(`Step "${node.id}": its worker exited (code ${code}) before the step returned.`, {
            context: { step: node.id, exitCode: code },
          }),
        );
    });
  });
  result.catch(() => {});

  async function answer(call: Extract<WorkerToParent, { type: 'call' }>) {
    try {
      const target = handles.get(call.handle) as Record<string, (...args: unknown[]) => unknown>;
      const value = await target[call.method]!.apply(target, call.args);
      const crossing =
        value &&
        typeof value === 'object' &&
        methodAndDataKeys(value).some((k) => typeof (value as never)[k] === 'function')
          ? { __remote: remote(value) }
          : value;
      send({ type: 'result', id: call.id, value: crossing });
    } catch (error) {
      send({ type: 'error', id: call.id, error: toCrossingError(error) });
    }
  }

  return {
    result,
    started,
    async stop() {
      if (stopped) return;
      stopped = true;
      // terminate() resolves once the thread has stopped running JavaScript.
      await worker.terminate();
    },
  };
}

function methodAndDataKeys(target: object): string[] {
  const keys = new Set<string>();
  for (let o: object | null = target; o && o !== Object.prototype; o = Object.getPrototypeOf(o)) {
    for (const key of Object.getOwnPropertyNames(o)) if (key !== 'constructor') keys.add(key);
  }
  return [...keys];
}

function withBuffers(value: unknown, bufferOutputs: readonly string[]): unknown {
  if (bufferOutputs.length === 0) return value;
  const out = { ...(value as Record<string, Uint8Array>) } as Record<string, unknown>;
  for (const name of bufferOutputs) {
    const view = out[name] as Uint8Array;
    out[name] = Buffer.from(view.buffer, view.byteOffset, view.byteLength);
  }
  return out;
}

// The worker entry beside this file: JavaScript in the build; when running from source (tests,
// tsx) the TypeScript entry, loaded after registering tsx in the worker (hooks are per thread).
const FROM_SOURCE = import.meta.url.endsWith('.ts');
const ENTRY = new URL(`./attempt-worker-main.${FROM_SOURCE ? 'ts' : 'js'}`, import.meta.url);
const WORKER_ENTRY: string | URL = FROM_SOURCE
  ? `import(${JSON.stringify(pathToFileURL(createRequire(import.meta.url).resolve('tsx/esm/api')).href.replace(/\.cjs$/, '.mjs'))})` +
    `.then(({ register }) => { register(); return import(${JSON.stringify(ENTRY.href)}); });`
  : ENTRY;
const WORKER_OPTIONS = FROM_SOURCE ? { eval: true } : {};
