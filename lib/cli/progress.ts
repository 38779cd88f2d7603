import type { RunEvent } from '../runtime/local-orchestrator.ts';
import { type CliIo, colors, formatDuration } from './io.ts';

/**
 * Live, line-per-event progress for a run (written to stderr so stdout stays for results):
 * each step as it starts, retries, logs and finishes, with durations.
 */
export function progressPrinter(io: CliIo) {
  const c = colors(io);
  const write = (line: string) => io.stderr.write(`${line}\n`);
  return (event: RunEvent) => {
    switch (event.type) {
      case 'run-started':
        write(
          `${c.bold('▶')} ${event.run.pipeline} ${c.dim(`run ${event.run.id} on stack ${event.run.stack}, ${event.graph.nodes.length} steps`)}`,
        );
        break;
      case 'step-started':
        write(`  ${c.cyan('…')} ${event.stepId} ${c.dim('running')}`);
        break;
      case 'step-retrying':
        write(
          `  ${c.yellow('↻')} ${event.stepId} ${c.yellow(`attempt ${event.attempt} failed (${event.error.message}); retrying in ${formatDuration(event.delayMs)}`)}`,
        );
        break;
      case 'step-log':
        write(`    ${c.dim(`${event.stepId} |`)} ${event.message}`);
        break;
      case 'step-finished': {
        const s = event.stepRun;
        if (s.status === 'cached') write(`  ${c.blue('↺')} ${event.stepId} ${c.blue('cached')}`);
        else if (s.status === 'completed')
          write(`  ${c.green('✓')} ${event.stepId} ${c.green('completed')} ${c.dim(formatDuration(s.durationMs))}`);
        else
          write(
            `  ${c.red('✗')} ${event.stepId} ${c.red(s.status)} ${c.dim(formatDuration(s.durationMs))}${s.error ? ` ${s.error.message}` : ''}`,
          );
        break;
      }
      case 'run-finished': {
        const run = event.run;
        const took = run.endedAt ? formatDuration(Date.parse(run.endedAt) - Date.parse(run.startedAt)) : '';
        const mark = run.status === 'completed' ? c.green('✔ completed') : c.red(`✘ ${run.status}`);
        write(`${mark} ${c.dim(`in ${took}`)}${run.error ? `: ${run.error.message}` : ''}`);
        break;
      }
    }
  };
}
