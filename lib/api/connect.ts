import type { ApiConnection } from '../stacks/api-connection.ts';
import { StacklineApiClient } from './client.ts';

/** A typed API client for a saved or given connection: bearer token, or SigV4 signing (loaded only then). */
export async function apiClientFor(connection: ApiConnection): Promise<StacklineApiClient> {
  if (connection.auth === 'bearer') return new StacklineApiClient({ url: connection.url, token: connection.token });
  const { createSigV4Fetch } = await import('./sigv4-fetch.ts');
  return new StacklineApiClient({
    url: connection.url,
    fetch: createSigV4Fetch(connection.region ? { region: connection.region } : {}),
  });
}
