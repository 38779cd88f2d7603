/**
 * The worker thread of an isolated attempt (`isolation: 'worker'`): imports the module that defined
 * the step, finds the step by name, runs it once with a context whose calls go to the parent as
 * messages, and posts what it returned. The parent terminates this thread when the attempt times
 * out or the run is cancelled; nothing here has to cooperate for that.
 */
import { mkdirSync } from 'node:fs';
import { pathToFileURL } from 'node:url';
import { parentPort, workerData } from 'node:worker_threads';
import { loadTypeScript } from '../cli/load-pipeline.ts';
import { TYPESCRIPT_FILE } from '../cli/transpile.ts';
import { registerCompiledSource } from '../code-hash/compiled-sources.ts';
import { definedStepsNamed, type StepSpec } from '../dsl/step.ts';
import type { StepContext } from '../dsl/types.ts';
import { NonRetriableError } from '../errors.ts';
import { faultPoint } from '../util/fault-points.ts';
import {
  type AttemptWorkerData,
  fromCrossingError,
  type ParentToWorker,
  type Remote,
  type RemoteMarker,
  toCrossingError,
  type WorkerToParent,
} from './attempt-worker-protocol.ts';

const port = parentPort!;
const data = workerData as AttemptWorkerData;
const post = (message: WorkerToParent) => port.postMessage(message);

const pending = new Map<number, { resolve: (value: unknown) => void; reject: (error: unknown) => void }>();
let nextCallId = 0;
const controller = new AbortController();

port.on('message', (message: ParentToWorker) => {
  if (message.type === 'abort') {
    controller.abort(Object.assign(new Error(message.reason.message), { name: message.reason.name }));
    return;
  }
  const call = pending.get(message.id);
  if (!call) return;
  pending.delete(message.id);
  if (message.type === 'result') call.resolve(revive(message.value));
  else call.reject(fromCrossingError(message.error));
});

/** A stand-in for a parent-side object: data fields as they are, methods as calls to the parent. */
function stub(remote: Remote): Record<string, unknown> {
  const object: Record<string, unknown> = { ...remote.data };
  for (const method of remote.methods) {
    object[method] = (...args: unknown[]) =>
      new Promise((resolve, reject) => {
        const id = nextCallId++;
        pending.set(id, { resolve, reject });
        post({ type: 'call', id, handle: remote.handle, method, args });
      });
  }
  return object;
}

function revive(value: unknown): unknown {
  if (value && typeof value === 'object' && '__remote' in value) return stub((value as RemoteMarker).__remote);
  return value;
}

async function findStep(): Promise<StepSpec> {
  for (const [compiled, source] of data.compiledSources) registerCompiledSource(compiled, source);
  if (TYPESCRIPT_FILE.test(data.runFile)) await loadTypeScript();
  await import(pathToFileURL(data.runFile).href);
  const candidates = definedStepsNamed(data.stepName);
  const spec =
    candidates.length === 1 ? candidates[0] : candidates.find((candidate) => candidate.codeHash === data.codeHash);
  if (!spec) {
    throw new NonRetriableError(
      `Step "${data.stepName}" has isolation: 'worker', but importing ${data.moduleFile} in a worker does not define it ` +
        `(${candidates.length} steps of that name). Define the step at the top level of its module, or drop isolation.`,
      { context: { step: data.stepName, file: data.moduleFile } },
    );
  }
  return spec;
}

function asBuffers(values: Record<string, unknown>, names: readonly string[]): Record<string, unknown> {
  const out = { ...values };
  for (const name of names) {
    const view = out[name] as Uint8Array;
    out[name] = Buffer.from(view.buffer, view.byteOffset, view.byteLength);
  }
  return out;
}

async function main(): Promise<void> {
  const spec = await findStep();
  const { context } = data;
  let scratch: string | undefined;
  const stepContext: StepContext = {
    runId: context.runId,
    stepRunId: context.stepRunId,
    stepId: context.stepId,
    pipeline: context.pipeline,
    attempt: context.attempt,
    signal: controller.signal,
    get tmpDir() {
      if (scratch === undefined) {
        mkdirSync(data.scratchDir, { recursive: true });
        scratch = data.scratchDir;
      }
      return scratch;
    },
    log: (message) => post({ type: 'log', message: String(message) }),
    logMetadata: (values) => post({ type: 'metadata', values }),
    logArtifactMetadata: (output, values) => post({ type: 'artifact-metadata', output, values }),
    ...(context.model ? { model: stub(context.model) as unknown as StepContext['model'] } : {}),
    ...(context.runModelVersion
      ? { runModelVersion: stub(context.runModelVersion) as unknown as StepContext['runModelVersion'] }
      : {}),
    models: stub(context.models) as unknown as StepContext['models'],
  };
  faultPoint('step:attempt');
  post({ type: 'started' });
  const value = await spec.fn({
    inputs: asBuffers(data.inputs, data.bufferInputs),
    params: data.params,
    context: stepContext,
  });
  const bufferOutputs =
    value && typeof value === 'object'
      ? Object.entries(value as Record<string, unknown>)
          .filter(([, v]) => Buffer.isBuffer(v))
          .map(([k]) => k)
      : [];
  try {
    post({ type: 'returned', value, bufferOutputs });
  } catch (error) {
    throw new NonRetriableError(
      `Step "${data.stepName}" runs in a worker (isolation: 'worker') and returned a value that cannot leave it ` +
        `(${(error as Error).message}). Return data (JSON values, Buffers, paths of files in context.tmpDir), or drop isolation.`,
      { cause: error, context: { step: data.stepName } },
    );
  }
}

main().catch((error: unknown) => {
  post({ type: 'threw', error: toCrossingError(error) });
});
