import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type MotoServer, startMoto } from '../support/moto.ts';

function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

describe.skipIf(Boolean(process.env.AWS_ENDPOINT_URL))('startMoto', () => {
  let moto: MotoServer;

  beforeAll(async () => {
    moto = await startMoto();
  });

  afterAll(async () => {
    await moto?.stop();
  });

  it('starts a moto_server that answers its config endpoint', async () => {
    expect(moto.endpoint).toBe(`http://127.0.0.1:${moto.port}`);
    const response = await fetch(`${moto.endpoint}/moto-api/config`);
    expect(response.ok).toBe(true);
    expect(await response.json()).toHaveProperty('lambda');
  });

  it('resets the emulator state', async () => {
    await expect(moto.reset()).resolves.toBeUndefined();
  });

  it('stops exactly the process it started', async () => {
    const pid = moto.pid!;
    expect(isAlive(pid)).toBe(true);
    await moto.stop();
    expect(isAlive(pid)).toBe(false);
    await expect(fetch(`${moto.endpoint}/moto-api/config`)).rejects.toThrow();
  });
});
