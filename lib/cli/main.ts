import { Command, CommanderError, InvalidArgumentError, Option } from 'commander';
import { escapeForTerminal } from '../dsl/names.ts';
import { StacklineError } from '../errors.ts';
import type { Project } from '../stacks/project.ts';
import { ExitCode, exitCodeFor } from './exit-codes.ts';
import { type CliIo, printJson } from './io.ts';
// Commands load when they run (see lazy-commands.ts), so starting the CLI stays cheap.
import {
  apiConnectionAt,
  artifactsGc,
  artifactsList,
  artifactsLoad,
  artifactsShow,
  artifactsVerify,
  artifactsVersions,
  backupCommand,
  bundleCommand,
  compileCommand,
  dashboardCommand,
  deployCommand,
  destroyCommand,
  loginCommand,
  logoutCommand,
  modelAliasRemove,
  modelAliasSet,
  modelCompare,
  modelCreate,
  modelGate,
  modelHistory,
  modelList,
  modelPromote,
  modelShow,
  modelVersions,
  openProjectAt,
  remoteArtifactsLoad,
  remoteModelPromote,
  remoteRun,
  remoteRunsList,
  remoteStackDescribe,
  remoteStackList,
  restoreCommand,
  runCommand,
  runsCancel,
  runsExplain,
  runsList,
  runsReap,
  runsShow,
  serveCommand,
  stackDelete,
  stackDescribe,
  stackList,
  stackProvision,
  stackRegister,
  stackSet,
  tokenCreate,
  tokenList,
  tokenRevoke,
} from './lazy-commands.ts';

function positiveInt(value: string): number {
  const n = Number(value);
  if (!Number.isInteger(n) || n < 1) throw new InvalidArgumentError('must be a whole number ≥ 1.');
  return n;
}

const collect = (value: string, previous: string[]) => [...previous, value];

/**
 * Runs the `stackline` CLI with `argv` (without the node and script names) and returns the exit
 * code. Everything it prints goes through `io`, so tests run it in-process.
 */
export async function main(argv: string[], io: CliIo): Promise<number> {
  let exitCode: number = ExitCode.Ok;
  let project: Project | undefined;
  const openProject = async () => {
    project ??= await openProjectAt(io.cwd, io.env);
    return project;
  };
  const withStack = async <T>(
    stackName: string | undefined,
    fn: (stack: Awaited<ReturnType<Project['openStack']>>) => Promise<T>,
  ) => {
    const p = await openProject();
    const stack = await p.openStack(stackName ?? p.activeStackName());
    try {
      return await fn(stack);
    } finally {
      await stack.close();
    }
  };

  const program = new Command('stackline')
    .description('Stacks, pipelines, models and artifacts for ML — locally and on AWS serverless.')
    .version('0.1.0')
    .exitOverride()
    .configureOutput({ writeOut: (s) => io.stdout.write(s), writeErr: (s) => io.stderr.write(s) })
    .showHelpAfterError('(run with --help for usage)')
    .option('--api <url>', 'use this Stackline API (default: STACKLINE_API_URL, else `stackline login`)');
  /** The API this command goes through, when connected (see `stackline login`). */
  const connected = () => apiConnectionAt(io.cwd, io.env, program.opts<{ api?: string }>().api);
  const json = () => new Option('--json', 'print machine-readable JSON only');
  const stackOpt = () => new Option('--stack <name>', 'stack to use (default: the active stack)');
  const limit = () => new Option('--limit <n>', 'maximum rows').argParser(positiveInt).default(50);

  program
    .command('init')
    .description('create .stackline/ in this directory with the default local stack')
    .addOption(json())
    .action(async (opts: { json?: boolean }) => {
      const p = await openProject();
      if (opts.json) io.stdout.write(`${JSON.stringify({ home: p.home, activeStack: p.activeStackName() })}\n`);
      else io.stdout.write(`Initialized Stackline in ${p.home} (active stack: ${p.activeStackName()})\n`);
    });

  program
    .command('run')
    .description('run a pipeline file (TypeScript runs directly)')
    .argument('<file>', 'pipeline module, e.g. examples/iris/pipeline.ts')
    .option('--pipeline <name>', 'pipeline to run when the file exports several')
    .option('--param <key=value>', 'pipeline parameter (repeatable; JSON values allowed)', collect, [])
    .option('--config <file.yaml>', 'run configuration (parameters, cache, concurrency, tags, steps.<id>.cache)')
    .option('--no-cache', 'run every step, ignoring cached results')
    .option('--explain', 'say for each step why it hit or missed the cache')
    .option('--tag <key:value>', 'tag the run (repeatable)', collect, [])
    .addOption(new Option('--concurrency <n>', 'independent steps run at once').argParser(positiveInt))
    .addOption(stackOpt())
    .addOption(json())
    .action(async (file: string, opts) => {
      const api = await connected();
      exitCode = api ? await remoteRun(api, file, opts, io) : await runCommand(await openProject(), file, opts, io);
    });

  program
    .command('bundle')
    .description('bundle a pipeline file with the step runner for AWS Lambda and ECS')
    .argument('<file>', 'pipeline module, e.g. examples/iris/pipeline.ts')
    .requiredOption('--out <dir>', 'writes <dir>/lambda/index.mjs and <dir>/container/{index.mjs,Dockerfile}')
    .option('--bundle-aws-sdk', "put the AWS SDK inside the Lambda bundle instead of using the Lambda runtime's")
    .addOption(json())
    .action(async (file: string, opts) => {
      exitCode = await bundleCommand(file, opts, io);
    });

  program
    .command('compile')
    .description('compile a pipeline to an AWS Step Functions state machine (Amazon States Language)')
    .argument('<file>', 'pipeline module, e.g. examples/iris/pipeline.ts')
    .option('--pipeline <name>', 'pipeline to compile when the file exports several')
    .option('--out <file>', 'write the definition to this file (prints its size and state count)')
    .option(
      '--lambda-arn <arn>',
      'step runner Lambda function (default: the placeholder arn:aws:lambda:<AWS_REGION or us-east-1>:123456789012:function:stackline-step-runner)',
    )
    .option('--stack <name>', "take the ECS settings of ECS steps from this stack's configuration")
    .addOption(json())
    .action(async (file: string, opts) => {
      exitCode = await compileCommand(file, opts, io, opts.stack ? await openProject() : undefined);
    });

  program
    .command('backup')
    .description("copy the project's metadata database (SQLite online backup; safe while runs write)")
    .argument('<file>', 'where to write the backup (must not exist)')
    .addOption(json())
    .action((file: string, opts) => backupCommand(file, opts, io));
  program
    .command('restore')
    .description('replace the metadata database with a backup (the replaced one is kept beside it)')
    .argument('<file>', 'a file written by "stackline backup"')
    .addOption(json())
    .action((file: string, opts) => restoreCommand(file, opts, io));

  const runs = program.command('runs').description('list and inspect pipeline runs');
  runs
    .command('list')
    .option('--pipeline <name>')
    .option('--status <status>', 'pending | running | completed | failed | cancelled')
    .option('--tag <key:value>')
    .option('--since <time>', 'ISO time or age (30m, 12h, 7d)')
    .option('--until <time>', 'ISO time or age')
    .option('--cursor <cursor>', 'continue a previous listing')
    .addOption(limit())
    .addOption(stackOpt())
    .addOption(json())
    .action(async (opts) => {
      const api = await connected();
      if (api) return remoteRunsList(api, opts, io);
      return withStack(opts.stack, (s) => runsList(s, opts, io));
    });
  runs
    .command('show')
    .argument('<run-id>')
    .addOption(stackOpt())
    .addOption(json())
    .action((id: string, opts) => withStack(opts.stack, (s) => runsShow(s, id, opts, io)));
  runs
    .command('explain')
    .description('say for each step of a run why it hit or missed the cache')
    .argument('<run-id>')
    .argument('[step]', 'only this step (its id in the pipeline)')
    .addOption(stackOpt())
    .addOption(json())
    .action((id: string, step: string | undefined, opts) =>
      withStack(opts.stack, (s) => runsExplain(s, id, step, opts, io)),
    );
  runs
    .command('reap')
    .description('end every run whose executor is gone (dead process, expired lease, ended execution)')
    .option('--dry-run', 'only list them')
    .addOption(stackOpt())
    .addOption(json())
    .action((opts) => withStack(opts.stack, (s) => runsReap(s, opts, io)));
  runs
    .command('cancel')
    .description('stop a run (signal its process, or stop its Step Functions execution) and record it cancelled')
    .argument('<run-id>')
    .addOption(stackOpt())
    .addOption(json())
    .action((id: string, opts) => withStack(opts.stack, (s) => runsCancel(s, id, opts, io)));

  const artifacts = program.command('artifacts').description('list, inspect and load artifact versions');
  artifacts
    .command('list')
    .option('--tag <key:value>')
    .addOption(limit())
    .addOption(stackOpt())
    .addOption(json())
    .action((opts) => withStack(opts.stack, (s) => artifactsList(s, opts, io)));
  artifacts
    .command('versions')
    .argument('<name>')
    .option('--tag <key:value>')
    .addOption(limit())
    .addOption(stackOpt())
    .addOption(json())
    .action((name: string, opts) => withStack(opts.stack, (s) => artifactsVersions(s, name, opts, io)));
  artifacts
    .command('show')
    .argument('<name>')
    .argument('[version]', 'number or "latest"')
    .addOption(stackOpt())
    .addOption(json())
    .action((name: string, version: string | undefined, opts) =>
      withStack(opts.stack, (s) => artifactsShow(s, name, version, opts, io)),
    );
  artifacts
    .command('load')
    .description('print a JSON/string artifact (a fan-out collection as its list), or write any artifact to --out')
    .argument('<name>')
    .argument('[version]', 'number or "latest" (default: latest, the newest version)')
    .option('--out <path>', 'write the bytes to this file')
    .addOption(stackOpt())
    .addOption(json())
    .action(async (name: string, version: string | undefined, opts) => {
      const api = await connected();
      if (api) return remoteArtifactsLoad(api, name, version, opts, io);
      return withStack(opts.stack, (s) => artifactsLoad(s, name, version, opts, io));
    });

  artifacts
    .command('verify')
    .description('re-hash the stored bytes of every artifact version (or one artifact / version); exit 3 on damage')
    .argument('[name]')
    .argument('[version]', 'number or "latest"')
    .addOption(stackOpt())
    .addOption(json())
    .action(async (name: string | undefined, version: string | undefined, opts) => {
      exitCode = await withStack(opts.stack, (s) => artifactsVerify(s, name, version, opts, io));
    });
  artifacts
    .command('gc')
    .description('remove stored blobs no artifact version needs, once older than the grace period')
    .option('--grace <duration>', 'keep blobs written more recently than this (30m, 1h, 7d)', '1h')
    .option('--dry-run', 'list what would be removed, remove nothing')
    .addOption(stackOpt())
    .addOption(json())
    .action((opts) => withStack(opts.stack, (s) => artifactsGc(s, opts, io)));

  const stack = program.command('stack').description('manage stacks (the default local stack exists out of the box)');
  stack
    .command('list')
    .addOption(json())
    .action(async (opts) => {
      const api = await connected();
      if (api) return remoteStackList(api, opts, io);
      return stackList(await openProject(), opts, io);
    });
  stack
    .command('describe')
    .argument('[name]')
    .addOption(json())
    .action(async (name: string | undefined, opts) => {
      const api = await connected();
      if (api) return remoteStackDescribe(api, name, opts, io);
      return stackDescribe(await openProject(), name, opts, io);
    });
  stack
    .command('set')
    .description('make a stack the active one')
    .argument('<name>')
    .addOption(json())
    .action(async (name: string, opts) => stackSet(await openProject(), name, opts, io));
  stack
    .command('register')
    .description('create or replace a stack (checks the configuration; creates nothing on AWS)')
    .argument('<name>')
    .addOption(new Option('--orchestrator <type>').choices(['local', 'step-functions']).default('local'))
    .option(
      '--role-arn <arn>',
      'IAM role of the state machines (informational: the CDK app deploys them with their own roles)',
    )
    .option('--state-machine-prefix <prefix>', 'state machines are <prefix><pipeline> (default stackline-)')
    .option('--ecs-cluster-arn <arn>', 'ECS steps: the cluster (runner stack output EcsRunnerClusterArn)')
    .option(
      '--ecs-task-definition-arn <arn>',
      'ECS steps: the step-runner task definition (EcsRunnerTaskDefinitionArn)',
    )
    .option('--ecs-container-name <name>', 'ECS steps: the step-runner container (EcsRunnerContainerName)')
    .option('--ecs-subnets <ids>', 'ECS steps: comma-separated subnet ids (EcsRunnerSubnets)')
    .option('--ecs-security-groups <ids>', 'ECS steps: comma-separated security group ids (EcsRunnerSecurityGroup)')
    .addOption(new Option('--step-runner <type>').choices(['in-process', 'lambda']).default('in-process'))
    .option('--function-name <name>', 'the step runner Lambda (name or ARN), deployed from `stackline bundle`')
    .addOption(new Option('--artifact-store <type>').choices(['local', 's3']).default('local'))
    .option('--bucket <bucket>', 'S3 bucket of the artifact store')
    .option('--prefix <prefix>', 'key prefix in the bucket')
    .addOption(new Option('--sse <mode>', 'server-side encryption of artifacts').choices(['AES256', 'aws:kms']))
    .option('--kms-key-id <key>', 'KMS key for --sse aws:kms (default: the bucket key)')
    .addOption(new Option('--metadata-store <type>').choices(['sqlite', 'dynamodb']).default('sqlite'))
    .option('--table-prefix <prefix>', 'DynamoDB tables are <prefix>-stacks, -runs, -artifacts, -models')
    .option('--region <region>', 'AWS region (default: AWS_REGION)')
    .option('--endpoint <url>', 'AWS endpoint, for emulators such as moto or LocalStack')
    .option('--description <text>')
    .option('--tag <key:value>', 'tag the stack (repeatable)', collect, [])
    .option(
      '--promoter <pipeline>',
      'a pipeline whose steps may promote to production (repeatable; * = all)',
      collect,
      [],
    )
    .option('--set-active', 'make it the active stack')
    .addOption(json())
    .action(async (name: string, opts) => stackRegister(await openProject(), name, opts, io));
  stack
    .command('delete')
    .description('remove a stack from the registry (not the default or the active one; its data stays)')
    .argument('<name>')
    .addOption(json())
    .action(async (name: string, opts) => stackDelete(await openProject(), name, opts, io));
  stack
    .command('provision')
    .description("create a stack's DynamoDB tables and S3 bucket — for emulators and dev accounts; production uses CDK")
    .argument('<name>')
    .addOption(json())
    .action(async (name: string, opts) => stackProvision(await openProject(), name, opts, io));

  program
    .command('deploy')
    .description('deploy an environment with the CDK app (cdk deploy --all -c env=ENV) and register it as a stack')
    .requiredOption('--env <env>', "environment of cdk.json's stackline:environments")
    .option('--app <dir>', 'deploy this synthesized cloud assembly instead of synthesizing')
    .option('--stacks <id...>', 'deploy only these stacks (default: all of the environment)')
    .addOption(json())
    .action(async (opts) => deployCommand(await openProject(), opts, io));
  program
    .command('destroy')
    .description("destroy an environment's stacks (cdk destroy; retained data stays) and unregister its stack")
    .requiredOption('--env <env>', "environment of cdk.json's stackline:environments")
    .option('--app <dir>', 'a synthesized cloud assembly instead of synthesizing')
    .addOption(json())
    .action(async (opts) => destroyCommand(await openProject(), opts, io));

  const model = program.command('model').description('the model control plane: versions, stages, aliases, history');
  model
    .command('create')
    .description('create a model explicitly (pipelines with `model` create theirs on first use)')
    .argument('<model>')
    .option('--description <text>')
    .option('--tag <key:value>', 'tag the model (repeatable)', collect, [])
    .option('--gate <metric:max|min>', 'promotion gate: production only for a version whose metric beats the holder')
    .addOption(stackOpt())
    .addOption(json())
    .action((name: string, opts) => withStack(opts.stack, (s) => modelCreate(s, name, opts, io)));
  model
    .command('gate')
    .description("set a model's promotion gate (metric:max or metric:min), or remove it with `none`")
    .argument('<model>')
    .argument('<gate>')
    .addOption(stackOpt())
    .addOption(json())
    .action((name: string, gate: string, opts) => withStack(opts.stack, (s) => modelGate(s, name, gate, opts, io)));
  model
    .command('list')
    .option('--tag <key:value>')
    .addOption(limit())
    .addOption(stackOpt())
    .addOption(json())
    .action((opts) => withStack(opts.stack, (s) => modelList(s, opts, io)));
  model
    .command('show')
    .description('show a model, or one version (number, name, stage, alias or latest)')
    .argument('<model>')
    .argument('[version]')
    .addOption(stackOpt())
    .addOption(json())
    .action((name: string, version: string | undefined, opts) =>
      withStack(opts.stack, (s) => modelShow(s, name, version, opts, io)),
    );
  model
    .command('versions')
    .argument('<model>')
    .option('--tag <key:value>')
    .option('--stage <stage>', 'staging | production | archived')
    .addOption(limit())
    .addOption(stackOpt())
    .addOption(json())
    .action((name: string, opts) => withStack(opts.stack, (s) => modelVersions(s, name, opts, io)));
  model
    .command('history')
    .description('every stage and alias change, oldest first')
    .argument('<model>')
    .addOption(limit().default(200))
    .addOption(stackOpt())
    .addOption(json())
    .action((name: string, opts) => withStack(opts.stack, (s) => modelHistory(s, name, opts, io)));
  model
    .command('compare')
    .description("show two or more versions' metadata side by side (* marks keys that differ)")
    .argument('<model>')
    .argument('<versions...>')
    .addOption(stackOpt())
    .addOption(json())
    .action((name: string, versions: string[], opts) =>
      withStack(opts.stack, (s) => modelCompare(s, name, versions, opts, io)),
    );
  model
    .command('promote')
    .description('move a version to staging, production or archived')
    .argument('<model>')
    .argument('<version>', 'version number')
    .argument('<stage>', 'staging | production | archived')
    .option('--force', 'archive the version holding the stage instead of failing')
    .option('--expected-holder <version|none>', 'compare-and-set: fail unless this version (or none) holds the stage')
    .option('--reason <text>', 'recorded in the history')
    .addOption(stackOpt())
    .addOption(json())
    .action(async (name: string, version: string, stage: string, opts) => {
      const api = await connected();
      if (api) return remoteModelPromote(api, name, version, stage, opts, io);
      return withStack(opts.stack, (s) => modelPromote(s, name, version, stage, opts, io));
    });
  const alias = model.command('alias').description('named pointers such as champion / challenger');
  alias
    .command('set')
    .argument('<model>')
    .argument('<alias>')
    .argument('<version>', 'version number')
    .option('--reason <text>')
    .addOption(stackOpt())
    .addOption(json())
    .action((name: string, a: string, version: string, opts) =>
      withStack(opts.stack, (s) => modelAliasSet(s, name, a, version, opts, io)),
    );
  alias
    .command('remove')
    .argument('<model>')
    .argument('<alias>')
    .option('--reason <text>')
    .addOption(stackOpt())
    .addOption(json())
    .action((name: string, a: string, opts) => withStack(opts.stack, (s) => modelAliasRemove(s, name, a, opts, io)));

  program
    .command('serve')
    .description('serve the HTTP API for a stack (bearer tokens from `stackline token create`)')
    .addOption(
      new Option('--port <n>', 'TCP port (0: any free port)')
        .argParser((v) => {
          const n = Number(v);
          if (!Number.isInteger(n) || n < 0 || n > 65535) throw new InvalidArgumentError('must be a port, 0-65535.');
          return n;
        })
        .default(8787),
    )
    .option('--host <address>', 'address to bind; other hosts than loopback expose the API to the network', '127.0.0.1')
    .option('--pipelines <file>', 'pipeline file whose pipelines POST /runs may start (repeatable)', collect, [])
    .addOption(stackOpt())
    .addOption(json())
    .action(async (opts) => serveCommand(await openProject(), opts, io));
  program
    .command('dashboard')
    .description(
      'open the web dashboard: locally with a session token, or (with --api URL) for an API on AWS through a signing proxy',
    )
    .addOption(
      new Option('--port <n>', 'TCP port on 127.0.0.1 (0: any free port)')
        .argParser((v) => {
          const n = Number(v);
          if (!Number.isInteger(n) || n < 0 || n > 65535) throw new InvalidArgumentError('must be a port, 0-65535.');
          return n;
        })
        .default(0),
    )
    .option('--token <token>', 'open with this token instead of a session token revoked on exit')
    .addOption(
      new Option('--role <role>', "the session token's role").choices(['member', 'release-manager']).default('member'),
    )
    // `--api <url>` is the global option: for `dashboard`, an API on AWS (its URL with the stage),
    // opened through a local proxy that signs requests with your AWS credentials.
    .option('--region <region>', 'AWS region of --api (default: from its host name, else AWS_REGION)')
    .option('--no-open', 'only print the URL (no browser is started without a display anyway)')
    .addOption(stackOpt())
    .addOption(json())
    .action(async (opts) => {
      const { api } = program.opts<{ api?: string }>();
      return dashboardCommand(api ? undefined : await openProject(), { ...opts, ...(api ? { api } : {}) }, io);
    });
  program
    .command('login')
    .description('connect this project to a Stackline API: bearer token for `stackline serve`, SigV4 for API Gateway')
    .argument('<api-url>', 'e.g. http://127.0.0.1:8787 or https://abc.execute-api.eu-west-1.amazonaws.com/api')
    .option('--token <token>', 'bearer token from `stackline token create` (default: STACKLINE_TOKEN)')
    .option('--sigv4', 'sign with the default AWS credentials even though the URL is not an execute-api one')
    .option('--region <region>', "the API's AWS region (with --sigv4 on a custom domain)")
    .addOption(json())
    .action((url: string, opts) => loginCommand(url, opts, io));
  program
    .command('logout')
    .description('forget the API connection; commands use local stacks again')
    .addOption(json())
    .action((opts) => logoutCommand(opts, io));
  const token = program.command('token').description('bearer tokens for `stackline serve` (stored hashed)');
  token
    .command('create')
    .description('create a token and print it once')
    .addOption(
      new Option('--role <role>', 'what the token may do').choices(['member', 'release-manager']).makeOptionMandatory(),
    )
    .option('--name <name>', 'recorded as the actor of every change made with the token')
    .addOption(json())
    .action(async (opts) => tokenCreate(await openProject(), opts, io));
  token
    .command('list')
    .addOption(json())
    .action(async (opts) => tokenList(await openProject(), opts, io));
  token
    .command('revoke')
    .argument('<id-or-name>')
    .addOption(json())
    .action(async (idOrName: string, opts) => tokenRevoke(await openProject(), idOrName, opts, io));

  // `--debug` (anywhere) or STACKLINE_DEBUG=1: stack traces on errors. Taken out before commander
  // parses, so every command accepts it.
  const debug = argv.includes('--debug') || io.env.STACKLINE_DEBUG === '1';
  try {
    await program.parseAsync(
      argv.filter((arg) => arg !== '--debug'),
      { from: 'user' },
    );
  } catch (error) {
    exitCode = reportError(error, io, argv.includes('--json'), debug);
  } finally {
    await project?.close();
  }
  return exitCode;
}

/**
 * The one place errors are printed: one line on stderr (`error: …`, escaped so no user-supplied
 * bytes drive the terminal), the same as JSON on stdout with `--json`, the stack only with
 * `--debug` or STACKLINE_DEBUG=1.
 */
function reportError(error: unknown, io: CliIo, json: boolean, debug: boolean): number {
  if (error instanceof CommanderError) {
    // help and version exit 0; everything else commander rejects is a usage error (commander has
    // already printed it on stderr).
    if (error.exitCode === 0) return ExitCode.Ok;
    const message = error.message.replace(/^error: /, '');
    if (json) printJson(io, { error: { type: 'UsageError', code: 'USAGE', message: escapeForTerminal(message) } });
    return ExitCode.Usage;
  }
  const code = exitCodeFor(error);
  const message = escapeForTerminal(errorLine(error));
  if (json) {
    const type = error instanceof Error ? error.name : 'Error';
    const errorCode = error instanceof StacklineError ? error.code : 'INTERNAL';
    printJson(io, { error: { type, code: errorCode, message } });
  }
  if (!json) io.stderr.write(`error: ${message}\n`);
  if (debug && error instanceof Error && error.stack) io.stderr.write(`${error.stack}\n`);
  else if (!(error instanceof StacklineError))
    io.stderr.write('(an unexpected error: run with --debug for the stack trace)\n');
  return code;
}

/** A Stackline error's message; for anything else, its first line (the rest is usually a code frame or stack). */
function errorLine(error: unknown): string {
  if (error instanceof StacklineError) return error.message;
  const text =
    error instanceof Error ? `${error.name === 'Error' ? '' : `${error.name}: `}${error.message}` : String(error);
  return text.split('\n')[0] ?? text;
}
