import type { z } from 'zod';
import type { ApiContext } from '../context.ts';
import { toWirePage } from '../context.ts';
import type { StackPageSchema, StackParams, StackSchema, TagPageQuerySchema } from '../schemas.ts';

/** The stacks registered with this deployment. */
export async function listStacks(
  ctx: ApiContext,
  query: z.output<typeof TagPageQuerySchema>,
): Promise<z.input<typeof StackPageSchema>> {
  return toWirePage(await ctx.stacks.list(query));
}

/** One stack's record. @throws NotFoundError */
export function getStack(ctx: ApiContext, params: z.output<typeof StackParams>): Promise<z.input<typeof StackSchema>> {
  return ctx.stacks.get(params.stack);
}
