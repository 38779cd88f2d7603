#!/usr/bin/env node
// The CLI runs as compiled JavaScript (`npm run build` writes dist/; `npm ci` and `npm install`
// run it through `prepare`). Pipeline files may be TypeScript: the CLI compiles one ahead (or, for
// what that leaves, registers its TypeScript hooks) only when it loads one (lib/cli/load-pipeline.ts),
// so commands that load none never pay for either.
import { existsSync } from 'node:fs';

const compiled = new URL('../dist/lib/cli/main.js', import.meta.url);
if (!existsSync(compiled)) {
  process.stderr.write('stackline is not built: run `npm run build` in its directory (npm ci runs it too).\n');
  process.exit(1);
}
const { main } = await import(compiled.href);
process.exitCode = await main(process.argv.slice(2), {
  stdout: process.stdout,
  stderr: process.stderr,
  cwd: process.cwd(),
  env: process.env,
});
// Everything the command started has ended (its stores are closed, its output written), so exit
// now rather than wait for Node to tear the heap down (about 10 ms of a short run), once what was
// written to stdout and stderr has been handed to the system.
await Promise.all([process.stdout, process.stderr].map((stream) => new Promise((done) => stream.write('', done))));
process.exit();
