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
// Before anything else loads: V8's heap keeps its size while Stackline's own code runs
// (lib/runtime/heap-growth.ts), so a process's memory does not grow with a run's length.
const { holdHeapGrowth } = await import(new URL('../dist/lib/runtime/heap-growth.js', import.meta.url).href);
holdHeapGrowth();
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
