/**
 * `stackline deploy --env <env>` and `stackline destroy --env <env>`: the CDK app (`infra/`) behind
 * one command, with the deployed environment registered as a Stackline stack of the same name.
 */
import { spawn } from 'node:child_process';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { StacklineError, ValidationError } from '../../errors.ts';
import type { Project } from '../../stacks/project.ts';
import { DEFAULT_STACK_NAME, STACK_NAME } from '../../stacks/stack-config.ts';
import { type CliIo, colors, printJson } from '../io.ts';
import { type StackRegisterOptions, stackRegister } from './stack.ts';

export interface DeployOptions {
  env: string;
  /** A synthesized cloud assembly to deploy instead of synthesizing the app (`cdk deploy --app DIR`). */
  app?: string;
  /** Deploy only these stacks (CDK stack ids) instead of `--all`. */
  stacks?: string[];
  json?: boolean;
}

/** `cdk` exited non-zero. */
export class CdkCommandError extends StacklineError {
  override readonly code = 'CDK_FAILED';
}

/**
 * Deploys every stack of the environment (`cdk deploy --all -c env=<env>`), prints the runner
 * stack's outputs, and registers the environment as a Stackline stack from the `RegisterCommand`
 * output (with `--endpoint` when `AWS_ENDPOINT_URL` points the CDK CLI at an emulator).
 *
 * @throws ValidationError for an invalid environment name
 * @throws CdkCommandError when `cdk deploy` fails (its output has already been shown on stderr)
 */
export async function deployCommand(project: Project, options: DeployOptions, io: CliIo): Promise<void> {
  checkEnvironmentName(options.env);
  const work = await mkdtemp(join(tmpdir(), 'stackline-deploy-'));
  try {
    const outputsFile = join(work, 'outputs.json');
    await cdk(
      [
        'deploy',
        ...(options.stacks?.length ? options.stacks : ['--all']),
        '-c',
        `env=${options.env}`,
        '--require-approval',
        'never',
        '--outputs-file',
        outputsFile,
      ],
      options,
      io,
    );
    const byStack = JSON.parse(await readFile(outputsFile, 'utf8')) as Record<string, Record<string, string>>;
    const runner = byStack[`Stackline-${options.env}-Runner`];
    if (!runner?.RegisterCommand) {
      throw new CdkCommandError(
        `cdk deploy finished, but the stack Stackline-${options.env}-Runner has no RegisterCommand output to register it with.`,
      );
    }
    const register = registerOptions(runner.RegisterCommand, io.env.AWS_ENDPOINT_URL, options.json);
    if (!options.json) {
      const c = colors(io);
      io.stdout.write(`Deployed environment ${options.env}\n`);
      for (const [stack, outputs] of Object.entries(byStack)) {
        for (const [key, value] of Object.entries(outputs)) io.stdout.write(`  ${c.dim(`${stack}.${key}`)} ${value}\n`);
      }
    }
    await stackRegister(project, options.env, register, options.json ? { ...io, stdout: { write: () => true } } : io);
    if (options.json) printJson(io, { environment: options.env, outputs: byStack, stack: options.env });
  } finally {
    await rm(work, { recursive: true, force: true });
  }
}

/**
 * Destroys the environment's stacks (`cdk destroy --all -c env=<env> --force`; retained tables and
 * buckets stay) and removes its Stackline stack from the registry.
 */
export async function destroyCommand(project: Project, options: DeployOptions, io: CliIo): Promise<void> {
  checkEnvironmentName(options.env);
  await cdk(['destroy', '--all', '-c', `env=${options.env}`, '--force'], options, io);
  if (project.activeStackName() === options.env) await project.setActiveStack(DEFAULT_STACK_NAME);
  const registered = (await project.registry.stacks.find(options.env)) !== undefined;
  if (registered) await project.registry.stacks.delete(options.env);
  if (options.json) printJson(io, { environment: options.env, destroyed: true, unregistered: registered });
  else io.stdout.write(`Destroyed environment ${options.env}${registered ? ' and removed its stack' : ''}\n`);
}

function checkEnvironmentName(env: string): void {
  if (!STACK_NAME.test(env) || env === DEFAULT_STACK_NAME) {
    throw new ValidationError(
      `--env ${JSON.stringify(env)}: name an environment of cdk.json's "stackline:environments" (dev, staging, prod).`,
    );
  }
}

/** The `RegisterCommand` output (`npx stackline stack register <env> --flag value …`) as options. */
function registerOptions(command: string, endpoint: string | undefined, json: boolean | undefined) {
  const words = command.trim().split(/\s+/).slice(5); // npx stackline stack register <env>
  const options: Record<string, unknown> = { tag: [], ...(json ? { json } : {}) };
  for (let i = 0; i < words.length; i += 2) {
    const flag = words[i]!.replace(/^--/, '');
    options[flag.replace(/-([a-z])/g, (_, ch: string) => ch.toUpperCase())] = words[i + 1];
  }
  if (endpoint) options.endpoint = endpoint;
  return options as unknown as StackRegisterOptions;
}

/** Runs the project's CDK CLI, its output shown on stderr (stdout is kept for our own result). */
function cdk(args: string[], options: DeployOptions, io: CliIo): Promise<void> {
  const argv = ['cdk', ...args, ...(options.app ? ['--app', options.app] : []), '--no-notices'];
  return new Promise((resolve, reject) => {
    const child = spawn('npx', argv, { cwd: io.cwd, env: io.env, stdio: ['ignore', 'pipe', 'pipe'] });
    child.stdout.on('data', (chunk: Buffer) => io.stderr.write(chunk.toString()));
    child.stderr.on('data', (chunk: Buffer) => io.stderr.write(chunk.toString()));
    child.on('error', reject);
    child.on('close', (code) => {
      if (code === 0) resolve();
      else reject(new CdkCommandError(`npx ${argv.join(' ')} failed (exit ${code}); its output is above.`));
    });
  });
}
