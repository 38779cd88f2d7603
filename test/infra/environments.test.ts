import { describe, expect, it } from 'vitest';
import { DEFAULT_ENVIRONMENTS, ENVIRONMENT_NAMES, resolveEnvironments } from '../../infra/environments.ts';

describe('resolveEnvironments', () => {
  it('returns every environment when none is selected', () => {
    expect(resolveEnvironments({}).map((e) => e.name)).toEqual([...ENVIRONMENT_NAMES]);
  });

  it('retains prod data and destroys dev data by default', () => {
    expect(DEFAULT_ENVIRONMENTS.prod.removal).toBe('retain');
    expect(DEFAULT_ENVIRONMENTS.dev.removal).toBe('destroy');
  });

  it('names tables after the environment', () => {
    for (const name of ENVIRONMENT_NAMES) expect(DEFAULT_ENVIRONMENTS[name].tablePrefix).toBe(`stackline-${name}`);
  });

  it('applies context overrides, given as an object or as the JSON string `cdk -c` passes', () => {
    const [fromObject] = resolveEnvironments({ selected: 'prod', overrides: { prod: { encryption: 'kms' } } });
    const [fromJson] = resolveEnvironments({ selected: 'prod', overrides: '{"prod":{"encryption":"kms"}}' });
    expect(fromObject!.encryption).toBe('kms');
    expect(fromJson).toEqual(fromObject);
  });

  it('falls back to the CLI default account and region, and lets an environment pin its own', () => {
    const [dev, , prod] = resolveEnvironments({
      overrides: { prod: { account: '210987654321', region: 'us-west-2' } },
      defaultAccount: '123456789012',
      defaultRegion: 'eu-west-1',
    });
    expect(dev).toMatchObject({ account: '123456789012', region: 'eu-west-1' });
    expect(prod).toMatchObject({ account: '210987654321', region: 'us-west-2' });
  });

  it('leaves account and region unset (environment-agnostic) when nothing provides them', () => {
    const [dev] = resolveEnvironments({ selected: 'dev' });
    expect(dev).not.toHaveProperty('account');
    expect(dev).not.toHaveProperty('region');
  });

  it('rejects an unknown environment, naming the valid ones', () => {
    expect(() => resolveEnvironments({ selected: 'qa' })).toThrow(
      'Unknown environment "qa": use -c env=dev|staging|prod.',
    );
  });

  it('rejects invalid or unknown override fields, naming each', () => {
    expect(() => resolveEnvironments({ overrides: { dev: { removal: 'keep', colour: 'red' } } })).toThrow(
      'Invalid "stackline:environments" context: dev.removal: Invalid option: expected one of "retain"|"destroy"; dev: Unrecognized key: "colour"',
    );
    expect(() => resolveEnvironments({ overrides: { dev: { account: '12' } } })).toThrow(
      /dev\.account: a 12-digit account id/,
    );
  });
});
