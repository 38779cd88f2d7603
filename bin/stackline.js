#!/usr/bin/env node
// The CLI is TypeScript, and so are users' pipeline files: tsx compiles both on the fly,
// so there is no build step between editing a pipeline and running it.
import { register } from 'tsx/esm/api';

register();
const { main } = await import('../lib/cli/main.ts');
process.exitCode = await main(process.argv.slice(2), {
  stdout: process.stdout,
  stderr: process.stderr,
  cwd: process.cwd(),
  env: process.env,
});
