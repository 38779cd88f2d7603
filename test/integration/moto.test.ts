import {
  CreateStateMachineCommand,
  DescribeExecutionCommand,
  SFNClient,
  StartExecutionCommand,
} from '@aws-sdk/client-sfn';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { awsTestClientConfig, type MotoServer, startMoto } from '../support/moto.ts';

/** Creates and starts a one-Pass-state machine; returns the execution status once settled or after `waitMs`. */
async function runPassStateMachine(endpoint: string, waitMs = 10_000): Promise<string | undefined> {
  const sfn = new SFNClient(awsTestClientConfig(endpoint));
  try {
    const { stateMachineArn } = await sfn.send(
      new CreateStateMachineCommand({
        name: `pass-${Date.now()}`,
        definition: JSON.stringify({ StartAt: 'Done', States: { Done: { Type: 'Pass', End: true } } }),
        roleArn: 'arn:aws:iam::123456789012:role/test',
      }),
    );
    const { executionArn } = await sfn.send(new StartExecutionCommand({ stateMachineArn }));
    const deadline = Date.now() + waitMs;
    for (;;) {
      const { status } = await sfn.send(new DescribeExecutionCommand({ executionArn }));
      if (status !== 'RUNNING' || Date.now() > deadline) return status;
      await new Promise((resolve) => setTimeout(resolve, 200));
    }
  } finally {
    sfn.destroy();
  }
}

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

  it('starts a moto server (python3 -m moto_ext) that answers its config endpoint', async () => {
    expect(moto.endpoint).toBe(`http://127.0.0.1:${moto.port}`);
    const response = await fetch(`${moto.endpoint}/moto-api/config`);
    expect(response.ok).toBe(true);
    expect(await response.json()).toHaveProperty('lambda');
  });

  it('leaves Step Functions executions RUNNING unless execution is asked for', async () => {
    expect(await runPassStateMachine(moto.endpoint, 1000)).toBe('RUNNING');
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

describe.skipIf(Boolean(process.env.AWS_ENDPOINT_URL))('startMoto options and errors', () => {
  const savedPython = process.env.STACKLINE_MOTO_PYTHON;

  afterEach(() => {
    if (savedPython === undefined) delete process.env.STACKLINE_MOTO_PYTHON;
    else process.env.STACKLINE_MOTO_PYTHON = savedPython;
  });

  it('switches Step Functions execution on when asked', async () => {
    const moto = await startMoto({ stepFunctionsExecution: true });
    try {
      expect(await runPassStateMachine(moto.endpoint)).toBe('SUCCEEDED');
    } finally {
      await moto.stop();
    }
  });

  it('names the missing interpreter and gives the install hint', async () => {
    process.env.STACKLINE_MOTO_PYTHON = 'no-such-python-for-stackline';
    await expect(startMoto()).rejects.toThrow(
      /no-such-python-for-stackline was not found on PATH.*pip install 'moto\[server\]==5\.2\.1'/,
    );
  });

  it('says when the interpreter cannot import moto', async () => {
    process.env.STACKLINE_MOTO_PYTHON = 'false'; // exits 1 like a python3 without moto
    await expect(startMoto()).rejects.toThrow(/cannot import moto.*pip install 'moto\[server\]==5\.2\.1'/);
  });
});
