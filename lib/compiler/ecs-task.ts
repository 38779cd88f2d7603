/**
 * How a step with `runner: 'ecs'` becomes a Task state: an ECS `RunTask` on Fargate that waits for
 * a task token (`ecs:runTask.waitForTaskToken`). The container (functions/step-runner/ecs.ts)
 * reports the step's outcome itself with `SendTaskSuccess` / `SendTaskFailure`, the error named as
 * the Lambda runner names it, so ECS steps get the same Retry fields as Lambda steps; it sends
 * `SendTaskHeartbeat` so that a task that dies without reporting fails the state after
 * {@link ECS_HEARTBEAT_SECONDS} (`States.Timeout`, retried like a step timeout).
 *
 * `.sync` was the alternative: it reports every container failure as `States.TaskFailed` with the
 * exit code, so a `NonRetriableError` could not be told from a transient failure.
 */
import type { StepResources } from '../dsl/types.ts';
import type { PayloadTemplate } from './asl-types.ts';

/** Where the compiled state machine runs steps declared with `runner: 'ecs'`: ECS on Fargate. */
export interface EcsRunnerOptions {
  clusterArn: string;
  /** The step runner's task definition; its container reads the request from `STACKLINE_REQUEST`. */
  taskDefinitionArn: string;
  containerName: string;
  /** awsvpc subnets (1 to 16). */
  subnets: string[];
  /** Up to 5 security groups (default: the VPC's default group). */
  securityGroups?: string[];
  /** Default false: tasks in private subnets reach AWS through NAT or VPC endpoints. */
  assignPublicIp?: boolean;
}

/** The integration: RunTask, then wait until the container sends the task token back. */
export const ECS_RUN_TASK = 'arn:aws:states:::ecs:runTask.waitForTaskToken';
/** The container environment variable the ECS entry point reads its request from. */
export const ECS_REQUEST_ENV = 'STACKLINE_REQUEST';
/** The container environment variable holding the state's task token (`$$.Task.Token`). */
export const ECS_TASK_TOKEN_ENV = 'STACKLINE_TASK_TOKEN';
/**
 * `HeartbeatSeconds` of ECS Task states: a task that sends no heartbeat for this long (it never
 * started, ran out of memory, was stopped) fails the state with `States.Timeout`. Long enough for
 * Fargate to provision a task and pull the image (typically 30–90 s) before the first heartbeat.
 */
export const ECS_HEARTBEAT_SECONDS = 300;
/** The container sends a heartbeat this often: five chances per heartbeat window. */
export const ECS_HEARTBEAT_INTERVAL_MS = (ECS_HEARTBEAT_SECONDS / 5) * 1000;

/** Every problem with `options.ecs`, as lines for the compile error. */
export function ecsOptionProblems(ecs: EcsRunnerOptions): string[] {
  const problems: string[] = [];
  const nonEmpty = (value: unknown) => typeof value === 'string' && value.length > 0;
  for (const key of ['clusterArn', 'taskDefinitionArn', 'containerName'] as const) {
    if (!nonEmpty(ecs[key])) problems.push(`ecs.${key} must be a non-empty string.`);
  }
  if (!Array.isArray(ecs.subnets) || ecs.subnets.length < 1 || ecs.subnets.length > 16 || !ecs.subnets.every(nonEmpty))
    problems.push('ecs.subnets must list 1 to 16 subnet ids (Fargate tasks use awsvpc networking).');
  if (ecs.securityGroups !== undefined && (ecs.securityGroups.length > 5 || !ecs.securityGroups.every(nonEmpty)))
    problems.push('ecs.securityGroups must list at most 5 security group ids.');
  return problems;
}

/** Fargate task sizes: CPU units → the memory sizes (MiB) allowed with it. */
const FARGATE_SIZES: ReadonlyMap<number, readonly number[]> = new Map([
  [256, [512, 1024, 2048]],
  [512, range(1024, 4096, 1024)],
  [1024, range(2048, 8192, 1024)],
  [2048, range(4096, 16384, 1024)],
  [4096, range(8192, 30720, 1024)],
  [8192, range(16384, 61440, 4096)],
  [16384, range(32768, 122880, 8192)],
]);
const FARGATE_MEMORY = new Set([...FARGATE_SIZES.values()].flat());

function range(from: number, to: number, by: number): number[] {
  const out: number[] = [];
  for (let v = from; v <= to; v += by) out.push(v);
  return out;
}

/** `resources.cpu` is in vCPUs (0.25 … 16); Fargate takes CPU units (1 vCPU = 1024). */
export function fargateCpuUnits(cpu: number): number {
  return Math.round(cpu * 1024);
}

/** Why `resources` is not a Fargate task size (empty when it is). */
export function fargateProblems(where: string, resources: StepResources | undefined): string[] {
  const problems: string[] = [];
  const { cpu, memoryMb, ephemeralStorageMb } = resources ?? {};
  const vcpus = [...FARGATE_SIZES.keys()].map((u) => u / 1024).join(', ');
  if (cpu !== undefined && !FARGATE_SIZES.has(fargateCpuUnits(cpu))) {
    problems.push(`${where} asks for ${cpu} vCPU, which is not a Fargate task size: use one of ${vcpus}.`);
  } else if (cpu !== undefined && memoryMb !== undefined) {
    const allowed = FARGATE_SIZES.get(fargateCpuUnits(cpu))!;
    if (!allowed.includes(memoryMb))
      problems.push(
        `${where} asks for ${cpu} vCPU with ${memoryMb} MiB, which Fargate does not offer: with ${cpu} vCPU use ${allowed[0]} to ${allowed[allowed.length - 1]} MiB (${allowed.length > 3 ? `in steps of ${allowed[1]! - allowed[0]!} MiB` : allowed.join(', ')}).`,
      );
  } else if (memoryMb !== undefined && !FARGATE_MEMORY.has(memoryMb)) {
    problems.push(
      `${where} asks for ${memoryMb} MiB, which no Fargate task size offers: use a size such as 512, 1024, 2048, 3072 … (see the Fargate task sizes).`,
    );
  }
  if (ephemeralStorageMb !== undefined && Math.ceil(ephemeralStorageMb / 1024) > 200)
    problems.push(`${where} asks for ${ephemeralStorageMb} MB of ephemeral storage; Fargate offers at most 200 GiB.`);
  return problems;
}

/**
 * `HeartbeatSeconds` for a state with this `TimeoutSeconds`: Step Functions requires it to be
 * smaller than the timeout, and a timeout shorter than the heartbeat window already catches a dead task.
 */
export function ecsHeartbeatSeconds(timeoutSeconds: number | undefined): number | undefined {
  return timeoutSeconds === undefined || timeoutSeconds > ECS_HEARTBEAT_SECONDS ? ECS_HEARTBEAT_SECONDS : undefined;
}

/**
 * The `Parameters` of an ECS Task state: one shared task definition, sized per step through
 * task- and container-level overrides (`resources.cpu`, `memoryMb`, `ephemeralStorageMb`); the
 * request (built at `$.request` by the preceding Pass state) and the task token travel as
 * container environment overrides.
 */
export function ecsRunTaskParameters(ecs: EcsRunnerOptions, resources: StepResources | undefined): PayloadTemplate {
  const cpu = resources?.cpu === undefined ? undefined : fargateCpuUnits(resources.cpu);
  const memory = resources?.memoryMb;
  const storageGiB = resources?.ephemeralStorageMb === undefined ? 0 : Math.ceil(resources.ephemeralStorageMb / 1024);
  return {
    LaunchType: 'FARGATE',
    Cluster: ecs.clusterArn,
    TaskDefinition: ecs.taskDefinitionArn,
    NetworkConfiguration: {
      AwsvpcConfiguration: {
        Subnets: [...ecs.subnets],
        ...(ecs.securityGroups?.length ? { SecurityGroups: [...ecs.securityGroups] } : {}),
        AssignPublicIp: ecs.assignPublicIp ? 'ENABLED' : 'DISABLED',
      },
    },
    Overrides: {
      ...(cpu === undefined ? {} : { Cpu: String(cpu) }),
      ...(memory === undefined ? {} : { Memory: String(memory) }),
      // Fargate gives 20 GiB by default; an override must be 21 to 200 GiB.
      ...(storageGiB > 20 ? { EphemeralStorage: { SizeInGiB: storageGiB } } : {}),
      ContainerOverrides: [
        {
          Name: ecs.containerName,
          ...(cpu === undefined ? {} : { Cpu: cpu }),
          ...(memory === undefined ? {} : { Memory: memory }),
          Environment: [
            { Name: ECS_REQUEST_ENV, 'Value.$': 'States.JsonToString($.request)' },
            { Name: ECS_TASK_TOKEN_ENV, 'Value.$': '$$.Task.Token' },
          ],
        },
      ],
    },
  };
}
