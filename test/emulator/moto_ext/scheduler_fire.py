"""Patch: EventBridge Scheduler schedules exist when CloudFormation deploys them, and fire on demand.

moto behaviour changed (moto/scheduler/models.py, moto/cloudformation/parsing.py, moto/moto_api):

1. ``AWS::Scheduler::Schedule`` has no CloudFormation model: moto skips it with a warning, so a
   deployed stack has no schedules. It is added (create, update, delete through the Scheduler backend).
2. Schedules never fire. ``POST /moto-api/stackline/scheduler/fire`` with
   ``{"name": ..., "group"?: "default", "executionId"?: ..., "account_id"?, "region"?}`` fires one now:
   the target's ``Input`` with Scheduler's context attributes filled in
   (``<aws.scheduler.schedule-arn>``, ``<aws.scheduler.scheduled-time>``,
   ``<aws.scheduler.execution-id>``, ``<aws.scheduler.attempt-number>``) goes to the target — a
   Step Functions state machine, version or alias gets StartExecution. Passing the same
   ``executionId`` again is what a Scheduler retry looks like. Answers ``{"executionArn": ...}``.
   Tests choose when a schedule fires; the expression itself is not evaluated.
"""

from __future__ import annotations

import datetime
import json
import uuid
from typing import Any

from .cfn_arn import ArnAttribute

FIRE_PATH = "{0}/moto-api/stackline/scheduler/fire"


def fire_schedule(
    account_id: str, region: str, name: str, group: str = "default", execution_id: str | None = None
) -> dict[str, Any]:
    from moto.scheduler.models import scheduler_backends
    from moto.utilities.arns import parse_arn

    schedule = scheduler_backends[account_id][region].get_schedule(group, name)
    target = schedule.target
    context = {
        "<aws.scheduler.schedule-arn>": schedule.arn,
        "<aws.scheduler.scheduled-time>": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "<aws.scheduler.execution-id>": execution_id or str(uuid.uuid4()),
        "<aws.scheduler.attempt-number>": "1",
    }
    payload = target.get("Input") or "{}"
    for placeholder, value in context.items():
        payload = payload.replace(placeholder, value)
    arn = parse_arn(target["Arn"])
    if arn.service != "states":
        raise ValueError(f"moto_ext fires Step Functions targets only, not {target['Arn']}")
    from moto_ext.sfn_deployed import _active_backend

    execution = _active_backend(arn.account, arn.region).start_execution(target["Arn"], None, payload)
    return {"executionArn": execution.execution_arn, "executionId": context["<aws.scheduler.execution-id>"]}


def _fire_response(request: Any, full_url: str, headers: Any) -> tuple[int, dict[str, str], str]:
    body = json.loads(request.get_data() or b"{}")
    try:
        result = fire_schedule(
            body.get("account_id", "123456789012"),
            body.get("region", "us-east-1"),
            body["name"],
            body.get("group", "default"),
            body.get("executionId"),
        )
    except Exception as error:  # noqa: BLE001 - the test sees the reason
        return 400, {"Content-Type": "application/json"}, json.dumps({"error": f"{type(error).__name__}: {error}"})
    return 200, {"Content-Type": "application/json"}, json.dumps(result)


def apply() -> None:
    from moto.cloudformation import parsing
    from moto.core.common_models import CloudFormationModel
    from moto.moto_api._internal import urls
    from moto.scheduler.models import scheduler_backends

    if FIRE_PATH in urls.url_paths:
        return
    urls.url_paths[FIRE_PATH] = _fire_response

    def _create(account_id: str, region_name: str, props: dict[str, Any]) -> Any:
        return scheduler_backends[account_id][region_name].create_schedule(
            description=props.get("Description"),
            end_date=props.get("EndDate"),
            flexible_time_window=props.get("FlexibleTimeWindow", {"Mode": "OFF"}),
            group_name=props.get("GroupName") or "default",
            kms_key_arn=props.get("KmsKeyArn"),
            name=props["Name"],
            schedule_expression=props["ScheduleExpression"],
            schedule_expression_timezone=props.get("ScheduleExpressionTimezone"),
            start_date=props.get("StartDate"),
            state=props.get("State"),
            target=dict(props["Target"]),
            action_after_completion=None,
        )

    class CfnSchedule(ArnAttribute, CloudFormationModel):
        def __init__(self, schedule: Any) -> None:
            self.schedule = schedule
            self.arn = schedule.arn

        @property
        def physical_resource_id(self) -> str:
            return self.schedule.name

        @staticmethod
        def cloudformation_type() -> str:
            return "AWS::Scheduler::Schedule"

        @staticmethod
        def cloudformation_name_type() -> str:
            return "Name"

        @classmethod
        def create_from_cloudformation_json(  # type: ignore[misc]
            cls, resource_name: str, cloudformation_json: Any, account_id: str, region_name: str, **kwargs: Any
        ) -> CfnSchedule:
            props = dict(cloudformation_json["Properties"])
            props.setdefault("Name", resource_name)
            return cls(_create(account_id, region_name, props))

        @classmethod
        def update_from_cloudformation_json(  # type: ignore[misc]
            cls, original_resource: Any, new_resource_name: str, cloudformation_json: Any, account_id: str, region_name: str
        ) -> CfnSchedule:
            cls.delete_from_cloudformation_json(original_resource.schedule.name, {}, account_id, region_name)
            return cls.create_from_cloudformation_json(new_resource_name, cloudformation_json, account_id, region_name)

        @classmethod
        def delete_from_cloudformation_json(  # type: ignore[misc]
            cls, resource_name: str, cloudformation_json: Any, account_id: str, region_name: str
        ) -> None:
            backend = scheduler_backends[account_id][region_name]
            for group in backend.schedule_groups.values():
                group.schedules.pop(resource_name, None)

    for cached in (parsing.get_model_list, parsing.get_model_map, parsing.get_name_type_map):
        cached.cache_clear()
