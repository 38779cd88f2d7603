import { existsSync } from 'node:fs';
import { relative, resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import { ValidationError } from '../../errors.ts';
import { pipelinesOfModule } from '../../runtime/step-runner.ts';
import { ExitCode } from '../exit-codes.ts';
import { type CliIo, printJson } from '../io.ts';
import { loadTypeScript } from '../load-pipeline.ts';

export interface BundleCommandOptions {
  out: string;
  /** Put the AWS SDK inside the Lambda bundle (default: the Lambda runtime's). */
  bundleAwsSdk?: boolean;
  json?: boolean;
}

/**
 * `stackline bundle <file> --out DIR`: bundles a pipeline module with the step runner for AWS —
 * `DIR/lambda/index.mjs` (handler `index.handler`) and `DIR/container/` (bundle + Dockerfile for
 * ECS steps). The module is imported first, so a file without pipelines fails before bundling.
 */
export async function bundleCommand(file: string, options: BundleCommandOptions, io: CliIo): Promise<number> {
  const pipelineFile = resolve(io.cwd, file);
  if (!existsSync(pipelineFile)) throw new ValidationError(`Pipeline file not found: ${pipelineFile}`);
  if (/\.[cm]?tsx?$/.test(pipelineFile)) await loadTypeScript();
  const module = (await import(pathToFileURL(pipelineFile).href).catch((error: unknown) => {
    throw new ValidationError(`Cannot load ${file}: ${error instanceof Error ? error.message : String(error)}`, {
      cause: error,
    });
  })) as Record<string, unknown>;
  const pipelines = pipelinesOfModule(module).map((p) => p.name);
  // esbuild loads only for this command.
  const { bundlePipeline } = await import('../../bundle/bundle-pipeline.ts');
  const result = await bundlePipeline({
    pipelineFile,
    outDir: resolve(io.cwd, options.out),
    bundleAwsSdk: options.bundleAwsSdk === true,
  });
  if (options.json) {
    printJson(io, { pipelineFile, pipelines, ...result });
    return ExitCode.Ok;
  }
  const show = (path: string) => {
    const rel = relative(io.cwd, path);
    return rel && !rel.startsWith('..') ? rel : path;
  };
  io.stdout.write(
    `Bundled ${show(pipelineFile)} (pipelines: ${pipelines.join(', ')})\n` +
      `  Lambda:    ${show(result.lambda.path)}  ${formatKiB(result.lambda.bytes)}  (handler index.handler${
        result.lambda.runtimeImports.length > 0 ? '; AWS SDK from the Lambda runtime' : ''
      })\n` +
      `  Container: ${show(result.container.dir)}/  ${formatKiB(result.container.bytes)}  (index.mjs, Dockerfile)\n`,
  );
  return ExitCode.Ok;
}

function formatKiB(bytes: number): string {
  return `${(bytes / 1024).toFixed(0)} KiB`;
}
