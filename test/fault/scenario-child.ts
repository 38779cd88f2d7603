/**
 * One process of the fault-injection suite: runs the reference scenario (feature engineering, two
 * trainings with the promotion gate, inference) on the project in $STACKLINE_HOME, exactly as
 * `examples/reference/run.ts` does, and exits 0. With STACKLINE_FAULT_POINT set it is SIGKILLed
 * at that point instead. Opening the project reaps what an earlier killed process left running.
 * Prints one JSON line per finished run: { pipeline, status, steps: { stepId: status } }.
 */

import { featureEngineering } from '../../examples/reference/feature-engineering.ts';
import { inference } from '../../examples/reference/inference.ts';
import { training } from '../../examples/reference/training.ts';
import { Stackline } from '../../lib/client.ts';

const sl = await Stackline.open();
try {
  const plan = [
    () => sl.run(featureEngineering),
    () => sl.run(training, { params: { trees: 1, maxFeatures: 0.5, seed: 3 } }),
    () => sl.run(training, { params: { trees: 5 } }),
    () => sl.run(inference),
  ];
  for (const start of plan) {
    const { run, steps } = await start();
    const statuses = Object.fromEntries(steps.map((s) => [s.node.id, s.stepRun?.status ?? 'skipped']));
    process.stdout.write(`${JSON.stringify({ pipeline: run.pipeline, status: run.status, steps: statuses })}\n`);
    if (run.status !== 'completed') process.exit(1);
  }
} finally {
  await sl.close();
}
