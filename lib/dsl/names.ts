/**
 * What names may look like — the one set of rules the DSL, the metadata stores (so the client,
 * the CLI, pipelines and the API alike), and the CLI apply. Step names, invocation ids and
 * pipeline names become parts of artifact names, Step Functions state names and cache keys;
 * artifact and model names become S3/DynamoDB key parts; all of them are printed to terminals.
 */

/** Steps, step invocation ids and pipelines: letters, digits, `_` and `-`, at most 80. */
export const IDENTIFIER = /^[A-Za-z_][A-Za-z0-9_-]{0,79}$/;

/** Artifacts: also `.` and `:` (`train.model`, `iris:holdout`), at most 200. */
export const ARTIFACT_NAME = /^[A-Za-z0-9_][A-Za-z0-9_.:-]{0,199}$/;

/** Models: letters, digits, `.`, `_` and `-`, at most 100. */
export const MODEL_NAME = /^[A-Za-z_][A-Za-z0-9_.-]{0,99}$/;

/** Stacks: lowercase (they become AWS resource name parts), at most 63. */
export const STACK_NAME = /^[a-z0-9][a-z0-9_-]{0,62}$/;

/** Tags: `key` or `key:value`; no whitespace in the key, no control characters anywhere, at most 300. */
export const TAG = /^(?=.{1,300}$)[^:\s\p{Cc}]+(:[^\s\p{Cc}][^\p{Cc}]*)?$/u;

export type NameKind = 'pipeline' | 'step' | 'model' | 'artifact' | 'stack' | 'tag';

const RULES: Record<NameKind, { pattern: RegExp; allowed: string }> = {
  pipeline: { pattern: IDENTIFIER, allowed: 'letters, digits, "_" or "-", starting with a letter or "_", at most 80' },
  step: { pattern: IDENTIFIER, allowed: 'letters, digits, "_" or "-", starting with a letter or "_", at most 80' },
  model: {
    pattern: MODEL_NAME,
    allowed: 'letters, digits, ".", "_" or "-", starting with a letter or "_", at most 100',
  },
  artifact: { pattern: ARTIFACT_NAME, allowed: 'letters, digits, ".", "_", ":" or "-", at most 200' },
  stack: { pattern: STACK_NAME, allowed: 'lowercase letters, digits, "-" or "_", at most 63' },
  tag: { pattern: TAG, allowed: 'key:value with no whitespace in the key and no control characters, at most 300' },
};

/**
 * Why `value` cannot be a `kind` name, or undefined if it can. `..` is refused in the names that
 * allow dots, so no name reads as a path going up.
 */
export function nameProblem(kind: NameKind, value: unknown): string | undefined {
  const rule = RULES[kind];
  if (typeof value === 'string' && rule.pattern.test(value) && !(kind !== 'tag' && value.includes('..'))) {
    return undefined;
  }
  const label = kind === 'tag' ? 'Tag' : `${kind[0]!.toUpperCase()}${kind.slice(1)} name`;
  return `${label} ${displayValue(value)} is invalid: use ${rule.allowed}.`;
}

/**
 * A user-supplied value as it may be printed: JSON-quoted (control and escape characters become
 * `\u001b` and the like) and cut to 60 characters, with its length when cut.
 */
export function displayValue(value: unknown): string {
  if (typeof value !== 'string')
    return value === undefined ? 'undefined' : escapeForTerminal(JSON.stringify(value) ?? String(value));
  const quoted = JSON.stringify(value.length > 60 ? value.slice(0, 60) : value);
  return escapeForTerminal(value.length > 60 ? `${quoted.slice(0, -1)}…" (${value.length} characters)` : quoted);
}

// C0 and C1 control characters (ESC included) but tab and newline, DEL, and the Unicode
// line/paragraph separators.
// biome-ignore lint/suspicious/noControlCharactersInRegex: matching control characters is the point
const CONTROL = /[\u0000-\u0008\u000b-\u001f\u007f-\u009f\u2028\u2029]/g;

/**
 * Text safe to write to a terminal: control characters (terminal escape sequences start with one)
 * are shown as `\u001b`-style escapes; newlines and tabs are kept.
 */
export function escapeForTerminal(text: string): string {
  return text.replace(CONTROL, (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`);
}

/** The known name closest to `name` (edit distance at most a third of its length, at least 2), if any. */
export function closestName(name: string, known: Iterable<string>): string | undefined {
  let best: string | undefined;
  let bestDistance = Math.max(2, Math.floor(name.length / 3)) + 1;
  for (const candidate of known) {
    const distance = editDistance(name.toLowerCase(), candidate.toLowerCase());
    if (distance < bestDistance) {
      best = candidate;
      bestDistance = distance;
    }
  }
  return best;
}

function editDistance(a: string, b: string): number {
  let previous = Array.from({ length: b.length + 1 }, (_, j) => j);
  for (let i = 1; i <= a.length; i++) {
    const current = [i];
    for (let j = 1; j <= b.length; j++) {
      current[j] = Math.min(previous[j]! + 1, current[j - 1]! + 1, previous[j - 1]! + (a[i - 1] === b[j - 1] ? 0 : 1));
    }
    previous = current;
  }
  return previous[b.length]!;
}
