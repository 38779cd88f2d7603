import { z } from 'zod';
import { closestName, displayValue, nameProblem } from '../dsl/names.ts';
import { ValidationError } from '../errors.ts';
import { formatZodIssues } from '../util/zod-format.ts';

const callback = z.custom<(...args: never[]) => unknown>((value) => typeof value === 'function', 'must be a function');

/**
 * The options of a run, as the client (`Stackline.run`) and the CLI (`stackline run`) accept them.
 * Strict: a misspelled option is an error, not a default silently used.
 */
export const RunOptionsSchema = z
  .object({
    params: z.unknown().optional(),
    cache: z.boolean().optional(),
    stepCache: z.record(z.string(), z.boolean()).optional(),
    concurrency: z.number().int().min(1).max(256).optional(),
    failFast: z.boolean().optional(),
    tags: z.array(z.string()).optional(),
    stackName: z.string().optional(),
    signal: z.instanceof(AbortSignal).optional(),
    onEvent: callback.optional(),
    actor: z.string().optional(),
    onRunCreated: callback.optional(),
  })
  .strict();

/**
 * Checks run options before anything is recorded.
 * @throws ValidationError naming the option (and the closest known one for an unknown option).
 */
export function validateRunOptions(options: unknown, pipeline: string): void {
  const parsed = RunOptionsSchema.safeParse(options ?? {});
  if (!parsed.success) {
    const unknown = parsed.error.issues.find((issue) => issue.code === 'unrecognized_keys');
    if (unknown?.code === 'unrecognized_keys') {
      const key = unknown.keys[0]!;
      const guess = closestName(key, Object.keys(RunOptionsSchema.shape));
      throw new ValidationError(
        `Run of "${pipeline}": unknown option ${displayValue(key)}${guess ? ` (did you mean "${guess}"?)` : ''}.`,
        { context: { pipeline, option: key } },
      );
    }
    throw new ValidationError(`Run of "${pipeline}": invalid options: ${formatZodIssues(parsed.error)}.`, {
      context: { pipeline },
    });
  }
  const badTag = parsed.data.tags?.map((tag) => nameProblem('tag', tag)).find((p) => p !== undefined);
  if (badTag !== undefined) throw new ValidationError(`Run of "${pipeline}": ${badTag}`, { context: { pipeline } });
}
