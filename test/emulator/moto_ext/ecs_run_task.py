"""Patch: the ``ecs:runTask`` Step Functions integration calls moto's ECS with boto's parameter names.

moto behaviour changed: moto 5.2.1's Step Functions interpreter hands a state's ``Parameters``
(``LaunchType``, ``Overrides.ContainerOverrides``…, as ASL spells them) unchanged to boto3's
``ecs.run_task``, whose parameters are camelCase (``launchType``, ``overrides.containerOverrides``),
and reads ``response["Tasks"]`` from a response keyed ``tasks``: every ``ecs:runTask`` task failed
with ``States.Runtime: 'LaunchType'``. Here the request keys are turned into boto's casing and the
DescribeTasks answer back into the Step Functions casing, as AWS does. Values (environment variable
values, ARNs) are left alone. Nothing runs a container: tests read the task's overrides with
DescribeTasks and play the container themselves.
"""

from __future__ import annotations

from typing import Any


def _recase(value: Any, first: Any) -> Any:
    if isinstance(value, dict):
        return {(first(key[0]) + key[1:] if key else key): _recase(item, first) for key, item in value.items()}
    if isinstance(value, list):
        return [_recase(item, first) for item in value]
    return value


def apply() -> None:
    from moto.stepfunctions.parser.asl.component.state.exec.state_task.service.state_task_service_ecs import (
        StateTaskServiceEcs,
    )
    from moto.stepfunctions.parser.asl.utils.boto_client import boto_client_for

    original = StateTaskServiceEcs._eval_service_task
    if getattr(original, "_moto_ext_patched", False):
        return

    def _eval_service_task(
        self: Any, env: Any, resource_runtime_part: Any, normalised_parameters: dict, state_credentials: Any
    ) -> None:
        if self._get_boto_service_action() != "run_task":
            return original(self, env, resource_runtime_part, normalised_parameters, state_credentials)
        ecs = boto_client_for(region=resource_runtime_part.region, service="ecs", state_credentials=state_credentials)
        started = ecs.run_task(**_recase(normalised_parameters, str.lower))
        task = started["tasks"][0]
        described = ecs.describe_tasks(cluster=task["clusterArn"], tasks=[task["taskArn"]])
        described.pop("ResponseMetadata", None)
        # AWS outputs the description of the task, in the Step Functions casing.
        env.stack.append(_recase(described, str.upper))

    _eval_service_task._moto_ext_patched = True  # type: ignore[attr-defined]
    StateTaskServiceEcs._eval_service_task = _eval_service_task  # type: ignore[method-assign]
