/**
 * Stackline's own events on EventBridge (`source: "stackline"`): what they look like, and a
 * metadata store that publishes them after each write commits. The publisher is an interface
 * with one AWS adapter (EventBridgePublisher); the store decorator knows nothing of AWS.
 */
import { EventBridgeClient, PutEventsCommand } from '@aws-sdk/client-eventbridge';
import type { MetadataStore } from '../metadata/metadata-store.ts';
import type { PipelineRun, StageChange } from '../metadata/types.ts';

/** The `source` of every platform event. */
export const STACKLINE_EVENT_SOURCE = 'stackline';
export const RUN_STATUS_CHANGED = 'Run Status Changed';
export const MODEL_VERSION_STAGE_CHANGED = 'Model Version Stage Changed';

/** `detail` of a `Run Status Changed` event (a run reached a terminal status). */
export interface RunStatusChangedDetail {
  stack: string;
  runId: string;
  pipeline: string;
  status: string;
  tags: string[];
  endedAt?: string;
}

/** `detail` of a `Model Version Stage Changed` event. */
export interface ModelVersionStageChangedDetail {
  /** The Stackline stack (environment) whose metadata store recorded the change. */
  stack: string;
  model: string;
  version: number;
  fromStage: string | null;
  toStage: string | null;
  actor: string;
  reason?: string;
  changeId: string;
  at: string;
}

export type PlatformEvent =
  | { detailType: typeof RUN_STATUS_CHANGED; detail: RunStatusChangedDetail }
  | { detailType: typeof MODEL_VERSION_STAGE_CHANGED; detail: ModelVersionStageChangedDetail };

/** Where platform events go. */
export interface EventPublisher {
  publish(events: readonly PlatformEvent[]): Promise<void>;
}

/**
 * Publishes to one EventBridge bus (`STACKLINE_EVENT_BUS`), at most 10 entries per PutEvents call.
 *
 * @example
 * const publisher = new EventBridgePublisher({ client: new EventBridgeClient({}), eventBusName: 'default' });
 */
export class EventBridgePublisher implements EventPublisher {
  readonly #client: EventBridgeClient;
  readonly #bus: string;

  constructor(options: { client: EventBridgeClient; eventBusName: string }) {
    this.#client = options.client;
    this.#bus = options.eventBusName;
  }

  async publish(events: readonly PlatformEvent[]): Promise<void> {
    for (let i = 0; i < events.length; i += 10) {
      const entries = events.slice(i, i + 10).map((event) => ({
        EventBusName: this.#bus,
        Source: STACKLINE_EVENT_SOURCE,
        DetailType: event.detailType,
        Detail: JSON.stringify(event.detail),
      }));
      const result = await this.#client.send(new PutEventsCommand({ Entries: entries }));
      if ((result.FailedEntryCount ?? 0) > 0) {
        const failed = result.Entries?.find((entry) => entry.ErrorCode);
        throw new Error(
          `EventBridge refused ${result.FailedEntryCount} of ${entries.length} Stackline events on bus "${this.#bus}": ${failed?.ErrorCode} ${failed?.ErrorMessage ?? ''}`.trim(),
        );
      }
    }
  }
}

/** The event for a run that reached a terminal status. */
export function runStatusChanged(run: PipelineRun): PlatformEvent {
  return {
    detailType: RUN_STATUS_CHANGED,
    detail: {
      stack: run.stack,
      runId: run.id,
      pipeline: run.pipeline,
      status: run.status,
      tags: run.tags,
      ...(run.endedAt ? { endedAt: run.endedAt } : {}),
    },
  };
}

/** The event for a recorded stage change (aliases are not stages: none for them). */
export function modelVersionStageChanged(stack: string, change: StageChange): PlatformEvent | undefined {
  if (change.kind !== 'stage') return undefined;
  return {
    detailType: MODEL_VERSION_STAGE_CHANGED,
    detail: {
      stack,
      model: change.model,
      version: change.versionNumber,
      fromStage: change.fromStage ?? null,
      toStage: change.toStage ?? null,
      actor: change.actor,
      ...(change.reason ? { reason: change.reason } : {}),
      changeId: change.id,
      at: change.at,
    },
  };
}

/**
 * `store`, publishing a platform event after each write that changes a run's status
 * (`runs.finish`, `runs.abandon`) or a model version's stage (`models.setStage`) has committed.
 * A write that fails publishes nothing. A publish that fails is reported to `onPublishError`
 * (default: `console.error`) and does not fail the write, which has already happened.
 *
 * @example
 * const metadata = withEventPublishing(withStoreRules(dynamo), new EventBridgePublisher({ client, eventBusName }), 'prod');
 */
export function withEventPublishing<S extends MetadataStore>(
  store: S,
  publisher: EventPublisher,
  /** The stack (environment) name stage-change events carry; run events carry their run's. */
  stack: string,
  onPublishError: (error: unknown) => void = (error) =>
    console.error(`stackline: could not publish platform events: ${(error as Error)?.message ?? error}`),
): S {
  const publish = async (events: Array<PlatformEvent | undefined>) => {
    const present = events.filter((event): event is PlatformEvent => event !== undefined);
    if (present.length === 0) return;
    try {
      await publisher.publish(present);
    } catch (error) {
      onPublishError(error);
    }
  };
  const runs = store.runs;
  const models = store.models;
  const publishingRuns = overriding(runs, {
    finish: async (...args: Parameters<MetadataStore['runs']['finish']>) => {
      const run = await runs.finish(...args);
      await publish([runStatusChanged(run)]);
      return run;
    },
    abandon: async (...args: Parameters<MetadataStore['runs']['abandon']>) => {
      const changed = await runs.abandon(...args);
      const ended = await Promise.all(changed.map((id) => runs.get(id).catch(() => undefined)));
      await publish(ended.map((run) => (run ? runStatusChanged(run) : undefined)));
      return changed;
    },
  });
  const publishingModels = overriding(models, {
    setStage: async (...args: Parameters<MetadataStore['models']['setStage']>) => {
      const changes = await models.setStage(...args);
      await publish(changes.map((change) => modelVersionStageChanged(stack, change)));
      return changes;
    },
  });
  return new Proxy(store, {
    get(object, property) {
      if (property === 'runs') return publishingRuns;
      if (property === 'models') return publishingModels;
      const value = Reflect.get(object, property, object);
      return typeof value === 'function' ? value.bind(object) : value;
    },
  });
}

/**
 * `store` publishing platform events when the stack names an event bus (`STACKLINE_EVENT_BUS`,
 * set by the CDK app on the step runner, the API and the execution-status functions); else `store`.
 */
export function withPlatformEvents<S extends MetadataStore>(
  store: S,
  config: { STACKLINE_EVENT_BUS?: string | undefined; STACKLINE_STACK: string; AWS_REGION: string },
): S {
  if (!config.STACKLINE_EVENT_BUS) return store;
  const client = new EventBridgeClient({ region: config.AWS_REGION });
  const publisher = new EventBridgePublisher({ client, eventBusName: config.STACKLINE_EVENT_BUS });
  return withEventPublishing(store, publisher, config.STACKLINE_STACK);
}

/** `target` with some methods replaced; the others are called on `target` itself (adapters keep #private state). */
function overriding<T extends object>(target: T, methods: Partial<Record<keyof T, unknown>>): T {
  return new Proxy(target, {
    get(object, property) {
      if (Object.hasOwn(methods, property)) return methods[property as keyof T];
      const value = Reflect.get(object, property, object);
      return typeof value === 'function' ? value.bind(object) : value;
    },
  });
}
