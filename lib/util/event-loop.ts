/**
 * Work made only of promise callbacks — steps that never wait on I/O, on the synchronous local
 * stores — never lets Node's event loop turn: no signal handler (Ctrl-C), lease heartbeat or timer
 * runs until it ends. A turner says when the loop is due a turn and gives it one.
 */
export interface EventLoopTurner {
  /** Whether `everyMs` have passed since the loop last turned here. */
  due(): boolean;
  /** Resolves once the event loop has turned (timers, signals and I/O callbacks have run). */
  turn(): Promise<void>;
}

export function eventLoopTurner(everyMs = 10): EventLoopTurner {
  let turned = performance.now();
  return {
    due: () => performance.now() - turned >= everyMs,
    turn: () =>
      new Promise<void>((resolve) =>
        setImmediate(() => {
          turned = performance.now();
          resolve();
        }),
      ),
  };
}
