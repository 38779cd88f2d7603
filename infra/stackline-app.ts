/**
 * Composes the stacks of each environment into a CDK app. Async because the step-runner bundle
 * is built (with `bundlePipeline`, as `stackline bundle` does) before the Lambda asset refers to it.
 */
import { join, resolve } from 'node:path';
import { type App, RemovalPolicy, Validations } from 'aws-cdk-lib';
import { AwsSolutionsChecks } from 'cdk-nag';
import { bundleApiLambda } from '../lib/bundle/bundle-api-lambda.ts';
import { bundlePipeline } from '../lib/bundle/bundle-pipeline.ts';
import { ApiStack } from './api-stack.ts';
import { DataStack } from './data-stack.ts';
import type { StacklineEnvironment } from './environments.ts';
import { RunnerStack } from './runner-stack.ts';

/** Options of {@link addStacklineStages}. */
export interface StacklineStagesOptions {
  /** The environments to add, each as a `Stackline-<env>-Data` and a `Stackline-<env>-Runner` stack. */
  environments: readonly StacklineEnvironment[];
  /** Pipeline files are resolved against it. Default: the working directory. */
  rootDir?: string;
  /** Where bundles are written (`<bundleDir>/<env>/lambda/index.mjs`). Default: `<app.outdir>/stackline-bundles`. */
  bundleDir?: string;
  /** Run the cdk-nag AwsSolutions checks at synthesis. Default true. */
  nag?: boolean;
}

/** The stacks of one environment. */
export interface StacklineStage {
  environment: StacklineEnvironment;
  data: DataStack;
  runner: RunnerStack;
  api: ApiStack;
}

/**
 * Bundles each environment's pipeline module and adds its data and runner stacks to `app`,
 * with the cdk-nag AwsSolutions checks registered on the app.
 *
 * @example
 * const app = new App();
 * await addStacklineStages(app, { environments: resolveEnvironments({ selected: 'dev' }) });
 * app.synth();
 */
export async function addStacklineStages(app: App, options: StacklineStagesOptions): Promise<StacklineStage[]> {
  const rootDir = resolve(options.rootDir ?? process.cwd());
  const bundleDir = resolve(options.bundleDir ?? join(app.outdir, 'stackline-bundles'));
  if (options.nag ?? true) Validations.of(app).addPlugins(new AwsSolutionsChecks(app));

  // bundlePipeline replaces <outDir>/lambda, so environments never share (and race on) a directory.
  const bundles = await Promise.all(
    options.environments.map(async (environment) => {
      const { lambda } = await bundlePipeline({
        pipelineFile: resolve(rootDir, environment.pipelineFile),
        outDir: join(bundleDir, environment.name),
      });
      return join(lambda.path, '..');
    }),
  );

  // One API bundle serves every environment (its configuration comes from the environment variables).
  const apiBundle = join(bundleDir, 'api');
  await bundleApiLambda(join(apiBundle, 'index.mjs'));

  return options.environments.map((environment, i) => {
    const env = { account: environment.account, region: environment.region };
    const removalPolicy = environment.removal === 'retain' ? RemovalPolicy.RETAIN : RemovalPolicy.DESTROY;
    const data = new DataStack(app, `Stackline-${environment.name}-Data`, {
      env,
      description: `Stackline ${environment.name}: artifact bucket and metadata tables`,
      tablePrefix: environment.tablePrefix,
      ...(environment.bucketName ? { bucketName: environment.bucketName } : {}),
      artifactPrefix: environment.artifactPrefix,
      removalPolicy,
      encryption: environment.encryption,
      terminationProtection: environment.removal === 'retain',
    });
    const runner = new RunnerStack(app, `Stackline-${environment.name}-Runner`, {
      env,
      description: `Stackline ${environment.name}: step-runner Lambda and Step Functions role`,
      stacklineStack: environment.name,
      bucketName: data.bucketName,
      artifactPrefix: data.artifactPrefix,
      ...(data.encryptionKey ? { encryptionKey: data.encryptionKey } : {}),
      tablePrefix: environment.tablePrefix,
      codeDirectory: bundles[i]!,
      memoryMb: environment.runner.memoryMb,
      timeoutSeconds: environment.runner.timeoutSeconds,
      promoters: environment.promoters,
      ...(environment.distributedMapThreshold !== undefined
        ? { distributedMapThreshold: environment.distributedMapThreshold }
        : {}),
    });
    runner.addStackDependency(data, 'the runner uses the bucket and tables by name');
    const api = new ApiStack(app, `Stackline-${environment.name}-Api`, {
      env,
      description: `Stackline ${environment.name}: the platform API (API Gateway, AWS_IAM) and its team policies`,
      stacklineStack: environment.name,
      bucketName: data.bucketName,
      artifactPrefix: data.artifactPrefix,
      ...(data.encryptionKey ? { encryptionKey: data.encryptionKey } : {}),
      tablePrefix: environment.tablePrefix,
      codeDirectory: apiBundle,
    });
    api.addStackDependency(data, 'the API uses the bucket and tables by name');
    return { environment, data, runner, api };
  });
}
