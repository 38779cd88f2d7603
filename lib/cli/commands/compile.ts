import { mkdir, writeFile } from 'node:fs/promises';
import { dirname, relative, resolve } from 'node:path';
import { compileToAsl } from '../../compiler/compile-to-asl.ts';
import { ExitCode } from '../exit-codes.ts';
import { type CliIo, checkOutputFile, printJson } from '../io.ts';
import { loadPipeline } from '../load-pipeline.ts';

export interface CompileCommandOptions {
  pipeline?: string;
  out?: string;
  lambdaArn?: string;
  json?: boolean;
}

/**
 * The step runner ARN used when `--lambda-arn` is not given: a placeholder in the account
 * `123456789012`, to be replaced at deploy time (the region comes from `AWS_REGION`).
 */
export function placeholderLambdaArn(env: NodeJS.ProcessEnv): string {
  const region = env.AWS_REGION || env.AWS_DEFAULT_REGION || 'us-east-1';
  return `arn:aws:lambda:${region}:123456789012:function:stackline-step-runner`;
}

/**
 * `stackline compile <file>`: compiles a pipeline to an AWS Step Functions definition (Amazon
 * States Language). Prints the definition on stdout, or writes it to `--out` and prints its size
 * and state count on stderr. With `--json`, stdout gets one summary object instead (with the
 * definition when there is no `--out`).
 */
export async function compileCommand(file: string, options: CompileCommandOptions, io: CliIo): Promise<number> {
  const pipeline = await loadPipeline(file, io.cwd, options.pipeline);
  const lambdaFunctionArn = options.lambdaArn ?? placeholderLambdaArn(io.env);
  const compiled = compileToAsl(pipeline, { lambdaFunctionArn });
  const summary = {
    pipeline: pipeline.name,
    stateCount: compiled.stateCount,
    sizeBytes: compiled.sizeBytes,
    lambdaFunctionArn,
    placeholderArn: options.lambdaArn === undefined,
  };

  if (options.out) {
    const path = resolve(io.cwd, options.out);
    checkOutputFile(path, { createsParent: true });
    await mkdir(dirname(path), { recursive: true });
    // The file is what gets deployed: compact, byte for byte what the size limit measured.
    await writeFile(path, `${compiled.json}\n`);
    if (options.json) printJson(io, { ...summary, out: path });
    else
      io.stderr.write(
        `Wrote ${displayPath(io.cwd, path)}: pipeline "${pipeline.name}", ${compiled.stateCount} states, ` +
          `${formatSize(compiled.sizeBytes)} (Step Functions accepts up to 1 MiB)\n`,
      );
  } else if (options.json) {
    printJson(io, { ...summary, definition: compiled.definition });
  } else {
    io.stdout.write(`${JSON.stringify(compiled.definition, null, 2)}\n`);
  }
  if (summary.placeholderArn && !options.json)
    io.stderr.write(
      `note: the step runner is the placeholder ${lambdaFunctionArn}; pass --lambda-arn for a real one\n`,
    );
  return ExitCode.Ok;
}

function displayPath(cwd: string, path: string): string {
  const rel = relative(cwd, path);
  return rel && !rel.startsWith('..') ? rel : path;
}

function formatSize(bytes: number): string {
  return bytes < 1024 ? `${bytes} B` : `${(bytes / 1024).toFixed(1)} KiB`;
}
