/**
 * Composes the stacks of each environment into a CDK app. Async because the step-runner bundle
 * is built (with `bundlePipeline`, as `stackline bundle` does) before the Lambda asset refers to it.
 */
import { mkdir, writeFile } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import { type App, RemovalPolicy, Validations } from 'aws-cdk-lib';
import type * as s3 from 'aws-cdk-lib/aws-s3';
import { AwsSolutionsChecks } from 'cdk-nag';
import { bundleApiLambda } from '../lib/bundle/bundle-api-lambda.ts';
import { bundleExecutionStatusLambda } from '../lib/bundle/bundle-execution-status-lambda.ts';
import { bundlePipeline } from '../lib/bundle/bundle-pipeline.ts';
import type { PipelineDefinition } from '../lib/dsl/pipeline.ts';
import { pipelinesOfModule } from '../lib/runtime/step-runner.ts';
import { ApiStack } from './api-stack.ts';
import { DataStack } from './data-stack.ts';
import { EcsRunner, ecsTaskRoleName, hasEcsSteps } from './ecs-runner.ts';
import type { StacklineEnvironment } from './environments.ts';
import { PipelineStateMachines } from './pipeline-state-machines.ts';
import { PipelineTriggers } from './pipeline-triggers.ts';
import { RunnerStack, runnerRoleName, TABLE_DATA_ACTIONS } from './runner-stack.ts';

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
  /** The environment's pipelines as state machines (in the runner stack). */
  pipelines: PipelineStateMachines;
  /** Schedules, event rules, the execution-status rule (in the runner stack). */
  triggers: PipelineTriggers;
  api: ApiStack;
  /** In the runner stack, only when a pipeline of the environment has `runner: 'ecs'` steps. */
  ecsRunner?: EcsRunner;
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

  // One step runner per environment serves all of its pipeline modules: the bundle's entry
  // re-exports them. bundlePipeline replaces <outDir>/lambda, so environments never share a directory.
  const bundles = await Promise.all(
    options.environments.map(async (environment) => {
      const outDir = join(bundleDir, environment.name);
      const modules = environment.pipelines.map((file) => resolve(rootDir, file));
      const pipelines = await loadPipelines(environment.name, modules);
      // The entry sits beside, not inside, outDir: the bundler only writes into a directory it made.
      const entry = join(bundleDir, `${environment.name}.pipelines.ts`);
      await mkdir(bundleDir, { recursive: true });
      await writeFile(entry, `${modules.map((m) => `export * from ${JSON.stringify(m)};`).join('\n')}\n`);
      const { lambda } = await bundlePipeline({ pipelineFile: entry, outDir });
      return { codeDirectory: join(lambda.path, '..'), containerDirectory: join(outDir, 'container'), pipelines };
    }),
  );

  // One API bundle serves every environment (its configuration comes from the environment variables).
  const apiBundle = join(bundleDir, 'api');
  await bundleApiLambda(join(apiBundle, 'index.mjs'));
  // One execution-status bundle serves every environment too.
  const executionStatusBundle = join(bundleDir, 'execution-status');
  await bundleExecutionStatusLambda(join(executionStatusBundle, 'index.mjs'));

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
      codeDirectory: bundles[i]!.codeDirectory,
      memoryMb: environment.runner.memoryMb,
      timeoutSeconds: environment.runner.timeoutSeconds,
      promoters: environment.promoters,
      ...(environment.distributedMapThreshold !== undefined
        ? { distributedMapThreshold: environment.distributedMapThreshold }
        : {}),
    });
    runner.addStackDependency(data, 'the runner uses the bucket and tables by name');
    // Only environments with ECS steps get a VPC, a cluster and an image to build at deploy.
    const ecsRunner = bundles[i]!.pipelines.some(hasEcsSteps)
      ? new EcsRunner(runner, 'EcsRunner', {
          stacklineStack: environment.name,
          tablePrefix: environment.tablePrefix,
          containerDirectory: bundles[i]!.containerDirectory,
          environment: runner.stepRunnerEnvironment,
          dataStatements: runner.dataStatements,
          storeObjectsArn: runner.storeObjectsArn,
          ...environment.ecs,
        })
      : undefined;
    if (ecsRunner) runner.registerOptions.push(...ecsRunner.registerCommandOptions());
    const pipelines = new PipelineStateMachines(runner, 'Pipelines', {
      pipelines: bundles[i]!.pipelines,
      stepRunner: runner.function,
      // The runner stack's default name, as plain text: it is compiled into the definitions.
      stepRunnerName: `${environment.tablePrefix}-step-runner`,
      stepRunnerTimeoutSeconds: runner.timeoutSeconds,
      stateMachinePrefix: runner.stateMachinePrefix,
      bucketName: data.bucketName,
      artifactPrefix: data.artifactPrefix,
      ...(data.encryptionKey ? { encryptionKey: data.encryptionKey } : {}),
      ...(environment.distributedMapThreshold !== undefined
        ? { distributedMapThreshold: environment.distributedMapThreshold }
        : {}),
      ...(ecsRunner ? { ecsRunner } : {}),
    });
    const api = new ApiStack(app, `Stackline-${environment.name}-Api`, {
      env,
      description: `Stackline ${environment.name}: the platform API (API Gateway, AWS_IAM) and its team policies`,
      stacklineStack: environment.name,
      // Step code promotes through the API as its runner: the Lambda's role, and the ECS task role when there is one.
      runnerRoleNames: [
        runnerRoleName(environment.tablePrefix),
        ...(ecsRunner ? [ecsTaskRoleName(environment.tablePrefix)] : []),
      ],
      bucketName: data.bucketName,
      artifactPrefix: data.artifactPrefix,
      ...(data.encryptionKey ? { encryptionKey: data.encryptionKey } : {}),
      tablePrefix: environment.tablePrefix,
      codeDirectory: apiBundle,
      pipelines: Object.fromEntries(pipelines.deployed.map((d) => [d.pipeline.name, d.definitionHash])),
      stateMachinePrefix: runner.stateMachinePrefix,
      promoters: environment.promoters,
    });
    api.addStackDependency(data, 'the API uses the bucket and tables by name');
    const deployed = pipelines.deployed;
    // S3 triggers watch the artifact bucket: its EventBridge notifications go on (an L1 property,
    // not CDK's `eventBridgeEnabled`, which deploys a custom-resource Lambda to set it).
    if (deployed.some((d) => (d.pipeline.config.triggers ?? []).some((t) => 's3' in t))) {
      (data.bucket.node.defaultChild as s3.CfnBucket).notificationConfiguration = {
        eventBridgeConfiguration: { eventBridgeEnabled: true },
      };
    }
    const triggers = new PipelineTriggers(runner, 'Triggers', {
      deployed,
      stacklineStack: environment.name,
      namePrefix: runner.stateMachinePrefix,
      bucketName: data.bucketName,
      publishers: [runner.function, ...(ecsRunner ? [ecsRunner.eventPublisher] : []), api.function],
      executionStatus: {
        codeDirectory: executionStatusBundle,
        tablePrefix: environment.tablePrefix,
        tableArns: runner.dataTableArns,
        tableActions: TABLE_DATA_ACTIONS,
      },
    });
    api.addStackDependency(runner, 'the API grants the runner role (by name) the promotion routes');
    return { environment, data, runner, pipelines, triggers, api, ...(ecsRunner ? { ecsRunner } : {}) };
  });
}

/** Every pipeline the modules export; two with one name would be one state machine, so that fails. */
async function loadPipelines(environment: string, modules: string[]): Promise<PipelineDefinition[]> {
  const byName = new Map<string, { pipeline: PipelineDefinition; module: string }>();
  for (const module of modules) {
    for (const pipeline of pipelinesOfModule(await import(pathToFileURL(module).href))) {
      const seen = byName.get(pipeline.name);
      if (seen && seen.pipeline !== pipeline) {
        throw new Error(
          `Environment ${environment}: pipeline "${pipeline.name}" is exported by both ${seen.module} and ${module}; pipeline names must be unique per environment.`,
        );
      }
      byName.set(pipeline.name, { pipeline, module });
    }
  }
  return [...byName.values()].map((entry) => entry.pipeline);
}
