import { describe, expect, it } from 'vitest';
import { z } from 'zod';
import { PipelineDefinitionError } from '../../../lib/errors.ts';
import { pipeline } from '../../../lib/index.ts';

const parameters = z.object({ key: z.string().default(''), trees: z.number().default(1) });
const declare = (extra: Record<string, unknown>) => () =>
  pipeline({ name: 'p', parameters, ...extra } as never, () => undefined);

describe('pipeline({ schedule, triggers })', () => {
  it('accepts every trigger kind and schedules given as one object or a list', () => {
    const p = pipeline(
      {
        name: 'p',
        parameters,
        schedule: [{ cron: '0 6 ? * MON *', timeZone: 'Europe/Paris', flexibleWindowMinutes: 15 }, { rate: '1 hour' }],
        triggers: [
          { s3: { prefix: 'in/', suffix: '.csv' }, parameters: { key: { path: '$.detail.object.key' } } },
          { event: { source: 'a', detailType: 'B', detail: { kind: ['x'] } }, parameters: { trees: 3 } },
          { stackline: 'model-stage-changed', model: 'm', stage: 'production' },
          { stackline: 'run-completed', pipeline: 'other' },
        ],
      },
      () => undefined,
    );
    expect(p.config.triggers).toHaveLength(4);
    expect(declare({ schedule: { rate: '5 minutes', parameters: { trees: 2 } } })).not.toThrow();
  });

  it.each([
    [{ schedule: { cron: '0 6 * *' } }, /schedule is invalid: cron: six fields/],
    [
      { schedule: { cron: '0 6 * * ? *', rate: '1 hour' } },
      /schedule is invalid: cron: give exactly one of cron or rate/,
    ],
    [{ schedule: [{ rate: '1 hour' }, { rate: 'hourly' }] }, /schedule\[1\] is invalid: rate: "<n> minute/],
    [{ schedule: { rate: '1 hour', timeZone: 'Paris time' } }, /timeZone: an IANA time zone/],
    [
      { schedule: { rate: '1 hour', parameters: { tres: 3 } } },
      /schedule sets parameter "tres", which the pipeline's parameters do not declare \(known: key, trees\)/,
    ],
    [{ triggers: [{ s3: { prefix: '' } }] }, /triggers\[0\] is invalid: give \{ s3: \{ prefix \} \}/],
    [{ triggers: [{ sqs: 'q' }] }, /triggers\[0\] is invalid/],
    [
      { triggers: [{ event: { source: 'a', detailType: 'b' }, parameters: { nope: 1 } }] },
      /triggers\[0\] maps parameter "nope"/,
    ],
    [
      { triggers: [{ s3: { prefix: 'a/' }, parameters: { key: { path: 'detail.key' } } }] },
      /a JSONPath such as "\$\.detail\.object\.key"/,
    ],
    [{ triggers: [{ stackline: 'model-stage-changed', model: 'm', stage: 'latest' }] }, /triggers\[0\] is invalid/],
    [
      { triggers: [{ stackline: 'run-completed', pipeline: 'p' }] },
      /would start "p" whenever it completes \(an endless loop\)/,
    ],
    [{ triggers: { s3: { prefix: 'a/' } } }, /triggers must be an array/],
  ])('refuses %j at declaration: %s', (extra, message) => {
    expect(declare(extra)).toThrow(PipelineDefinitionError);
    expect(declare(extra)).toThrow(message);
  });
});
