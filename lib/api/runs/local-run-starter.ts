import type { PipelineDefinition } from '../../dsl/pipeline.ts';
import { errorMessage } from '../../errors.ts';
import { pipelineDefinitionHash } from '../../orchestrators/deployed-pipelines.ts';
import { runPipelineLocally } from '../../runtime/local-orchestrator.ts';
import type { StackRuntime } from '../../stacks/project.ts';
import type { RunStarter, StartRunRequest } from '../context.ts';
import { assertSameDefinition, assertServedStack, unknownPipeline } from './run-starter-rules.ts';

/**
 * `POST /runs` under `stackline serve`: runs the pipelines the server loaded at start
 * (`--pipelines FILE`, by name) with the local orchestrator on the served stack, in the server's
 * process. `start` returns once the run is recorded; the run goes on in the background, and
 * `close()` cancels what is still running (those runs end `cancelled`).
 */
export class LocalRunStarter implements RunStarter {
  private readonly inFlight = new Set<Promise<unknown>>();
  private readonly stopping = new AbortController();

  constructor(
    private readonly pipelines: ReadonlyMap<string, PipelineDefinition>,
    private readonly stack: StackRuntime,
    private readonly log: (line: string) => void = () => {},
  ) {}

  async start(request: StartRunRequest, trigger: { actor: string; tags: string[] }): Promise<{ runId: string }> {
    assertServedStack(request, this.stack.name);
    const pipeline =
      this.pipelines.get(request.pipeline) ??
      unknownPipeline(
        request.pipeline,
        [...this.pipelines.keys()],
        'start `stackline serve --pipelines FILE` with its file',
      );
    if (request.definitionSha256 !== undefined)
      assertSameDefinition(request, pipelineDefinitionHash(pipeline), this.stack.name);
    return new Promise((resolve, reject) => {
      const run = runPipelineLocally(
        pipeline,
        { ...this.stack, actor: trigger.actor },
        {
          ...(request.params === undefined ? {} : { params: request.params }),
          ...(request.cache === undefined ? {} : { cache: request.cache }),
          tags: [...(request.tags ?? []), ...trigger.tags],
          actor: trigger.actor,
          stackName: this.stack.name,
          signal: this.stopping.signal,
          onRunCreated: (runId) => resolve({ runId }),
        },
      );
      this.inFlight.add(run);
      run.then(
        (result) => this.log(`run ${result.run.id} (${pipeline.name}) ${result.run.status}`),
        (error: unknown) => {
          // Before the run was recorded (bad parameters, ...) this answers the request; after, it is logged.
          reject(error);
          this.log(`run of ${pipeline.name} failed: ${errorMessage(error)}`);
        },
      );
      void run.catch(() => {}).finally(() => this.inFlight.delete(run));
    });
  }

  /** Cancels the runs still going and waits for them to record their end. */
  async close(): Promise<void> {
    this.stopping.abort();
    await Promise.allSettled([...this.inFlight]);
  }
}
