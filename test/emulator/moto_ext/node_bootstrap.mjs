// Runs one Lambda invocation for moto_ext/lambda_node.py (test tooling, not a Lambda runtime).
// Usage: node node_bootstrap.mjs '<invocation JSON>' < event.json
// The invocation names the code directory, the `file.export` handler, a result file, the request
// id, the function ARN and the deadline. The outcome goes to the result file, never to stdout, so
// the handler may log freely: {"ok":true,"payload":"<JSON>"} or {"ok":false,"error":{...}} with
// the fields real Lambda reports for an unhandled error (errorType, errorMessage, trace).
import { existsSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';

const invocation = JSON.parse(process.argv[2] ?? '{}');
let reported = false;

function report(outcome) {
  if (reported) return;
  reported = true;
  writeFileSync(invocation.resultFile, JSON.stringify(outcome));
}

function describe(error) {
  if (error instanceof Error) {
    return {
      errorType: error.name || 'Error',
      errorMessage: error.message,
      trace: String(error.stack ?? '').split('\n'),
    };
  }
  return { errorType: typeof error, errorMessage: String(error), trace: [] };
}

function fail(error, exitCode) {
  const described = describe(error);
  console.error(`ERROR\t${described.errorType}: ${described.errorMessage}`);
  report({ ok: false, error: described });
  process.exit(exitCode);
}

class RuntimeError extends Error {
  constructor(name, message) {
    super(message);
    this.name = name;
  }
}

async function loadHandler() {
  const match = /^(.+)\.([^./]+)$/.exec(invocation.handler);
  if (!match) throw new RuntimeError('Runtime.MalformedHandlerName', `Bad handler ${invocation.handler}`);
  const [, modulePath, exportName] = match;
  // Real Lambda looks for the module as .js, then .mjs, then .cjs.
  const file = ['.js', '.mjs', '.cjs']
    .map((extension) => join(invocation.taskRoot, modulePath + extension))
    .find((candidate) => existsSync(candidate));
  if (!file) throw new RuntimeError('Runtime.ImportModuleError', `Error: Cannot find module '${modulePath}'`);
  let module;
  try {
    module = await import(pathToFileURL(file).href);
  } catch (error) {
    throw new RuntimeError('Runtime.ImportModuleError', String(error));
  }
  const handler = module[exportName] ?? module.default?.[exportName];
  if (typeof handler !== 'function') {
    throw new RuntimeError('Runtime.HandlerNotFound', `${invocation.handler} is undefined or not exported`);
  }
  return handler;
}

async function readEvent() {
  const chunks = [];
  for await (const chunk of process.stdin) chunks.push(chunk);
  const text = Buffer.concat(chunks).toString('utf8');
  return JSON.parse(text.trim() === '' ? '{}' : text);
}

function call(handler, event, context) {
  if (handler.length < 3) return Promise.resolve().then(() => handler(event, context));
  return new Promise((resolve, reject) => {
    const returned = handler(event, context, (error, value) => (error ? reject(error) : resolve(value)));
    if (returned && typeof returned.then === 'function') returned.then(resolve, reject);
  });
}

process.on('uncaughtException', (error) => fail(error, 129));
process.on('unhandledRejection', (error) => fail(error, 128));

const context = {
  callbackWaitsForEmptyEventLoop: true,
  functionName: process.env.AWS_LAMBDA_FUNCTION_NAME,
  functionVersion: process.env.AWS_LAMBDA_FUNCTION_VERSION,
  invokedFunctionArn: invocation.invokedFunctionArn,
  memoryLimitInMB: process.env.AWS_LAMBDA_FUNCTION_MEMORY_SIZE,
  awsRequestId: invocation.requestId,
  logGroupName: process.env.AWS_LAMBDA_LOG_GROUP_NAME,
  logStreamName: process.env.AWS_LAMBDA_LOG_STREAM_NAME,
  getRemainingTimeInMillis: () => Math.max(0, invocation.deadlineMs - Date.now()),
};

try {
  const handler = await loadHandler();
  const event = await readEvent();
  const result = await call(handler, event, context);
  report({ ok: true, payload: result === undefined ? 'null' : JSON.stringify(result) });
} catch (error) {
  fail(error, 1);
}
// Like Lambda, answer as soon as the handler's promise settles, even if sockets (SDK keep-alive)
// or timers would keep the event loop alive.
process.exit(0);
