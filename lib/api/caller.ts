import { PermissionDeniedError } from '../errors.ts';

/**
 * Roles of API callers. `member`: read everything, promote to staging/archived, set aliases that are
 * not protected. `release-manager`: also promote to production, use `force` and set protected aliases.
 */
export const API_ROLES = ['member', 'release-manager'] as const;
export type ApiRole = (typeof API_ROLES)[number];

/**
 * Who is calling, as authenticated by the transport: a bearer token's name under `stackline serve`,
 * the IAM principal behind API Gateway. Handlers record `actor` on every change; it never comes from
 * the request body or headers.
 */
export interface Caller {
  actor: string;
  role: ApiRole;
  /**
   * Set when the caller is the environment's step runner acting for one of its runs (see
   * `runner-caller.ts`): `actor` is then `pipeline:<name> run <id>` and promotions follow the
   * pipeline rules (production only for the environment's `promoters`).
   */
  run?: { pipeline: string; runId: string };
}

/** Aliases only release managers may move: they name what serves traffic. */
export const DEFAULT_PROTECTED_ALIASES: readonly string[] = ['champion'];

/** @throws PermissionDeniedError unless the caller is a release manager. */
export function requireReleaseManager(caller: Caller, what: string): void {
  if (caller.role !== 'release-manager') {
    throw new PermissionDeniedError(
      `${caller.actor} (role ${caller.role}) may not ${what}: only release managers may. Ask one, or use a release-manager token.`,
      { context: { actor: caller.actor, role: caller.role } },
    );
  }
}
