/**
 * The CDK app (`cdk.json`: `node --import tsx infra/app.ts`). Synthesizes every environment, or
 * only the one chosen with `-c env=dev|staging|prod`; per-environment overrides come from the
 * `stackline:environments` context; account and region default to the CLI's.
 */
import { App } from 'aws-cdk-lib';
import { resolveEnvironments } from './environments.ts';
import { addStacklineStages } from './stackline-app.ts';

const app = new App();
await addStacklineStages(app, {
  environments: resolveEnvironments({
    selected: app.node.tryGetContext('env'),
    overrides: app.node.tryGetContext('stackline:environments'),
    defaultAccount: process.env.CDK_DEFAULT_ACCOUNT,
    defaultRegion: process.env.CDK_DEFAULT_REGION,
  }),
});
app.synth();
