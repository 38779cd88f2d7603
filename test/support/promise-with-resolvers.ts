// aws-local-stepfunctions 3 calls Promise.withResolvers (Node ≥ 22) when it runs a state; Node 20
// lacks it. Import this module for its effect before running a state machine.
const PromiseWithResolvers = Promise as unknown as { withResolvers?: () => unknown };
PromiseWithResolvers.withResolvers ??= () => {
  let resolve!: (value: unknown) => void;
  let reject!: (reason: unknown) => void;
  const promise = new Promise((res, rej) => {
    resolve = res;
    reject = rej;
  });
  return { promise, resolve, reject };
};
