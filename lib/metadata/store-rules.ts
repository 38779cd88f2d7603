import { type NameKind, nameProblem } from '../dsl/names.ts';
import { RunFinishedError, StepAlreadyDoneError, StepInProgressError, ValidationError } from '../errors.ts';
import type { MetadataStore } from './metadata-store.ts';
import {
  type ArtifactVersionDraft,
  type ErrorInfo,
  MODEL_STAGES,
  type RunStatus,
  type StepRun,
  type StepRunCompletion,
  type StepRunStatus,
  type Tag,
} from './types.ts';

/**
 * Input rules every MetadataStore adapter applies the same way, so the conformance suite holds
 * SQLite and DynamoDB to one behaviour.
 */

export const DEFAULT_PAGE_LIMIT = 50;
export const MAX_PAGE_LIMIT = 1000;

/** Labels a version name or alias cannot take: they already mean something in a version reference. */
export const RESERVED_LABELS: readonly string[] = [...MODEL_STAGES, 'latest'];

export function pageLimit(limit: number | undefined): number {
  if (limit === undefined) return DEFAULT_PAGE_LIMIT;
  if (!Number.isInteger(limit) || limit < 1) {
    throw new ValidationError(`Page limit must be a positive integer, got ${limit}`, { context: { limit } });
  }
  return Math.min(limit, MAX_PAGE_LIMIT);
}

export function uniqueTags(tags: readonly Tag[]): Tag[] {
  return [...new Set(tags)];
}

/** Parses an ISO-8601 timestamp filter and returns it normalized to UTC. */
export function normalizeTimestamp(value: string, field: string): string {
  const time = Date.parse(value);
  if (Number.isNaN(time)) {
    throw new ValidationError(`"${field}" must be an ISO-8601 timestamp, got "${value}"`, {
      context: { [field]: value },
    });
  }
  return new Date(time).toISOString();
}

export function assertVersionLabel(model: string, what: 'alias' | 'version name', label: string): void {
  if (label === '' || RESERVED_LABELS.includes(label) || /^\d+$/.test(label)) {
    throw new ValidationError(
      `Model "${model}": "${label}" cannot be a ${what}; stages, "latest", numbers and "" would be ambiguous in a version reference`,
      { context: { model, [what === 'alias' ? 'alias' : 'name']: label } },
    );
  }
}

/** Throws the {@link ValidationError} for the first name or tag that breaks the rules of `lib/dsl/names.ts`. */
export function assertNames(checks: ReadonlyArray<readonly [NameKind, unknown]>, tags?: readonly unknown[]): void {
  const problems = checks.map(([kind, value]) => nameProblem(kind, value));
  for (const tag of tags ?? []) problems.push(nameProblem('tag', tag));
  const problem = problems.find((p) => p !== undefined);
  if (problem !== undefined) throw new ValidationError(problem);
}

type Checks = Record<string, (...args: never[]) => void>;

/** The calls that take names or tags, per repository, and what each must satisfy. */
const CHECKS: Record<'stacks' | 'runs' | 'artifacts' | 'models', Checks> = {
  stacks: {
    put: (stack: { name: string; tags?: Tag[] }) => assertNames([['stack', stack.name]], stack.tags),
  },
  runs: {
    create: (run: { pipeline: string; tags?: Tag[] }) => assertNames([['pipeline', run.pipeline]], run.tags),
    completeStep: (_id: string, completion: StepRunCompletion) =>
      assertNames(
        completion.outputs.map((o) => ['artifact', o.artifact.name] as const),
        completion.outputs.flatMap((o) => o.artifact.tags),
      ),
  },
  artifacts: {
    createVersion: (draft: ArtifactVersionDraft) => assertNames([['artifact', draft.name]], draft.tags),
    addTags: (_id: string, tags: Tag[]) => assertNames([], tags),
  },
  models: {
    create: (model: { name: string; tags?: Tag[] }) => assertNames([['model', model.name]], model.tags),
    ensure: (model: { name: string; tags?: Tag[] }) => assertNames([['model', model.name]], model.tags),
    createVersion: (model: string, init?: { tags?: Tag[] }) => assertNames([['model', model]], init?.tags),
  },
};

/**
 * The metadata store every entry point uses: `store` with the naming rules applied before any
 * write reaches the adapter, so the CLI, the client, pipelines and the API refuse the same names
 * with the same message, and an adapter never stores a name another could not read back.
 */
export function withStoreRules<S extends MetadataStore>(store: S): S {
  const guarded = new Map<string, unknown>();
  for (const [repository, checks] of Object.entries(CHECKS)) {
    const target = store[repository as keyof typeof CHECKS] as unknown as Record<string, unknown>;
    // Each method is wrapped once, not at every access: the stores sit on every step's hot path.
    const methods = new Map<PropertyKey, unknown>();
    guarded.set(
      repository,
      new Proxy(target, {
        // The repository itself is the receiver (never the proxy): adapters keep state in
        // #private fields, which only the real instance can read.
        get(object, property) {
          const value = Reflect.get(object, property, object);
          if (typeof value !== 'function') return value;
          let method = methods.get(property);
          if (method === undefined) {
            const check = typeof property === 'string' ? checks[property] : undefined;
            method =
              check === undefined
                ? value.bind(object)
                : (...args: never[]) => {
                    try {
                      check(...args);
                    } catch (error) {
                      return Promise.reject(error);
                    }
                    return (value as (...a: never[]) => unknown).apply(object, args);
                  };
            methods.set(property, method);
          }
          return method;
        },
      }),
    );
  }
  return new Proxy(store, {
    get(object, property) {
      if (typeof property === 'string' && guarded.has(property)) return guarded.get(property);
      const value = Reflect.get(object, property, object);
      return typeof value === 'function' ? value.bind(object) : value;
    },
  });
}

// ---------- Step run slots: one live attempt per (run, step id) ----------

/**
 * What an existing step run means for a new leased attempt at the same (run, stepId): `done`
 * (completed or cached: nothing to run), `live` (running under an unexpired or no lease: a duplicate),
 * `expired` (running, but its executor's lease ran out: replace it) or `free` (failed, cancelled).
 */
export function slotVerdict(
  status: StepRunStatus,
  leaseExpiresAt: string | undefined,
  now: string,
): 'done' | 'live' | 'expired' | 'free' {
  if (status === 'completed' || status === 'cached') return 'done';
  if (status !== 'running') return 'free';
  return leaseExpiresAt !== undefined && leaseExpiresAt <= now ? 'expired' : 'live';
}

/** @throws RunFinishedError when a step run would start in a run that has already finished. */
export function assertRunOpen(stepRun: Pick<StepRun, 'id' | 'runId' | 'stepId'>, status: RunStatus): void {
  if (status === 'pending' || status === 'running') return;
  throw new RunFinishedError(
    `Run "${stepRun.runId}" has already finished (${status}); step "${stepRun.stepId}" was not started.`,
    { context: { runId: stepRun.runId, stepId: stepRun.stepId, stepRunId: stepRun.id, status } },
  );
}

export function stepAlreadyDone(stepRun: Pick<StepRun, 'runId' | 'stepId'>, doneId: string, status: string) {
  return new StepAlreadyDoneError(
    `Step "${stepRun.stepId}" of run "${stepRun.runId}" already ${status === 'cached' ? 'reused a cached result' : 'completed'} (step run "${doneId}"); it is not run again.`,
    { context: { runId: stepRun.runId, stepId: stepRun.stepId, stepRunId: doneId } },
  );
}

export function stepInProgress(
  stepRun: Pick<StepRun, 'runId' | 'stepId'>,
  holderId: string,
  leaseExpiresAt: string | undefined,
) {
  return new StepInProgressError(
    `Step "${stepRun.stepId}" of run "${stepRun.runId}" is already running (step run "${holderId}"${leaseExpiresAt ? `, lease until ${leaseExpiresAt}` : ''}); retry after it ends or its lease expires.`,
    { context: { runId: stepRun.runId, stepId: stepRun.stepId, stepRunId: holderId } },
  );
}

export function leaseExpiredError(expiredId: string, replacedBy: string): ErrorInfo {
  return {
    type: 'LeaseExpired',
    message: `Step run "${expiredId}" stopped renewing its lease (its executor is gone); step run "${replacedBy}" took over.`,
  };
}
