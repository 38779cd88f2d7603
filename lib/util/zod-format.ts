import type { z } from 'zod';

/** `path.to.field: message; other: message` — short enough for one CLI line. */
export function formatZodIssues(error: z.ZodError): string {
  return error.issues
    .map((issue) => {
      const path = issue.path.length ? issue.path.map(String).join('.') : '(value)';
      return `${path}: ${issue.message}`;
    })
    .join('; ');
}
