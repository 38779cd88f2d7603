import type { Metadata, StepRun } from '../metadata/types.ts';
import type { StepEnvironment } from './step-executor.ts';

/**
 * How much of a step's log its record keeps (the tail). A DynamoDB item holds at most 400 KB, and
 * a run's records are read often: the whole log goes to the artifact store instead.
 */
export const LOG_RECORD_LIMIT_BYTES = 64 * 1024;

/**
 * The log lines to record on a step run: all of them when they fit in {@link LOG_RECORD_LIMIT_BYTES},
 * otherwise the tail that fits, after a first line naming the artifact version that keeps the whole
 * log (saved here as `<step id>.log`, materializer `string`). Returns the metadata to record with it.
 */
export async function recordableLogs(
  logs: readonly string[],
  stepRun: Pick<StepRun, 'id' | 'runId'>,
  stepId: string,
  env: Pick<StepEnvironment, 'metadata' | 'artifacts'>,
  limit = LOG_RECORD_LIMIT_BYTES,
): Promise<{ logs: string[]; metadata: Metadata }> {
  let total = 0;
  for (const line of logs) total += Buffer.byteLength(line, 'utf8') + 1;
  if (total <= limit) return { logs: [...logs], metadata: {} };
  const whole = `${logs.join('\n')}\n`;
  const blob = await env.artifacts.put(whole);
  const name = `${stepId.replace(/\[\d+\]$/, '')}.log`;
  const version = await env.metadata.artifacts.createVersion({
    name,
    contentHash: blob.contentHash,
    uri: blob.uri,
    size: blob.size,
    materializer: 'string',
    dataType: 'string',
    metadata: { stepId, stepRunId: stepRun.id, lines: logs.length },
    tags: [],
    producerRunId: stepRun.runId,
    producerStepRunId: stepRun.id,
  });
  const tail: string[] = [];
  let kept = 0;
  for (let i = logs.length - 1; i >= 0; i--) {
    const size = Buffer.byteLength(logs[i]!, 'utf8') + 1;
    if (kept + size > limit - 200) break;
    tail.unshift(logs[i]!);
    kept += size;
  }
  const skipped = logs.length - tail.length;
  return {
    logs: [`… ${skipped} earlier line(s) omitted; the whole log is artifact ${name} v${version.version}`, ...tail],
    metadata: { log: { artifact: name, version: version.version, lines: logs.length, bytes: blob.size } },
  };
}
