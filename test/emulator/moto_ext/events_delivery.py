"""Patch: EventBridge rules deliver to Step Functions and Lambda targets, as AWS does.

moto behaviour changed (moto/events/models.py, moto/s3/notifications.py, moto/s3/models.py):

1. ``Rule.send_to_targets`` raises ``NotImplementedError`` (PutEvents answers HTTP 500) for a
   ``states`` target. Here a matching rule starts an execution of the target ARN (a state machine,
   version or alias: ``sfn_deployed`` resolves the latter two) with the target's input. A
   ``lambda`` target raises the same error in moto; here the function is invoked asynchronously
   (``InvocationType: Event``, as EventBridge does) with the target's input. Other targets keep
   moto's behaviour.
2. moto's input transformer pastes string values into the template without quotes, so
   ``{"key": <key>}`` (what CDK's ``RuleTargetInput.fromObject`` renders) becomes invalid JSON.
   EventBridge inserts a placeholder outside a JSON string as a JSON value (strings quoted, a
   missing path as ``null``) and inside a string as the raw text; so does this patch, for the
   targets it delivers.
3. S3 → EventBridge notifications all carry one constant event id (moto copies a fixed base
   message), so every object looks like a redelivery of the first; each gets a fresh id.
4. ``AWS::S3::Bucket`` created by CloudFormation ignores ``NotificationConfiguration``; its
   ``EventBridgeConfiguration`` is applied (the bucket then notifies EventBridge).
"""

from __future__ import annotations

import json
import sys
import threading
import uuid
from typing import Any

_lock = threading.Lock()


def _value_at(event: Any, path: str) -> tuple[bool, Any]:
    from jsonpath_ng.ext import parse

    matches = parse(path).find(event)
    return (True, matches[0].value) if matches else (False, None)


def transform_input(target: dict[str, Any], event: dict[str, Any]) -> str:
    """The text EventBridge delivers to ``target`` for ``event``."""
    if "Input" in target:
        return str(target["Input"])
    if "InputPath" in target:
        return json.dumps(_value_at(event, target["InputPath"])[1])
    transformer = target.get("InputTransformer")
    if not transformer:
        return json.dumps(event)
    template: str = transformer["InputTemplate"]
    values = {name: _value_at(event, path) for name, path in transformer.get("InputPathsMap", {}).items()}
    values.setdefault("aws.events.event.json", (True, event))
    values.setdefault("aws.events.rule-name", (True, ""))
    out: list[str] = []
    in_string = False
    i = 0
    while i < len(template):
        char = template[i]
        if char == "\\" and in_string:
            out.append(template[i : i + 2])
            i += 2
            continue
        if char == '"':
            in_string = not in_string
        if char == "<":
            end = template.find(">", i)
            name = template[i + 1 : end] if end > i else ""
            if name in values:
                found, value = values[name]
                if in_string:
                    text = value if isinstance(value, str) else json.dumps(value)
                    out.append(json.dumps(text)[1:-1])
                else:
                    out.append(json.dumps(value if found else None))
                i = end + 1
                continue
        out.append(char)
        i += 1
    return "".join(out)


def _deliver(target: dict[str, Any], event: dict[str, Any]) -> None:
    from moto.utilities.arns import parse_arn

    from moto_ext.sfn_deployed import _active_backend

    arn = parse_arn(target["Arn"])
    if arn.service == "lambda":
        from moto.awslambda.models import lambda_backends

        name = target["Arn"].split(":function:", 1)[1]
        function, _, qualifier = name.partition(":")
        try:
            lambda_backends[arn.account][arn.region].invoke(
                function, qualifier or None, transform_input(target, event), {"x-amz-invocation-type": "Event"}, {}
            )
        except Exception as error:  # EventBridge accepts the event even when a target cannot be invoked
            print(f"moto_ext: events → lambda {target['Arn']}: {error}", file=sys.stderr)
        return
    _active_backend(arn.account, arn.region).start_execution(target["Arn"], None, transform_input(target, event))


def apply() -> None:
    from moto.events.models import Rule
    from moto.s3 import notifications
    from moto.s3.models import FakeBucket, s3_backends
    from moto.utilities.utils import get_partition

    if getattr(Rule.send_to_targets, "_moto_ext_patched", False):
        return

    original_send = Rule.send_to_targets

    def send_to_targets(self: Any, original_event: Any, transform_input: bool = True) -> None:
        ours = [t for t in self.targets if t["Arn"].split(":")[2] in ("states", "lambda")]
        if not ours:
            return original_send(self, original_event, transform_input)
        if self.event_pattern.matches_event(original_event):
            for target in ours:
                _deliver(target, dict(original_event))
        others = [t for t in self.targets if t not in ours]
        if others:
            with _lock:
                saved = self.targets
                self.targets = others
                try:
                    original_send(self, original_event, transform_input)
                finally:
                    self.targets = saved
        return None

    send_to_targets._moto_ext_patched = True  # type: ignore[attr-defined]
    Rule.send_to_targets = send_to_targets  # type: ignore[method-assign]

    original_s3_event = notifications._send_event_bridge_message

    def send_event_bridge_message(account_id: str, bucket: Any, event_name: str, key: Any) -> None:
        from moto.events import utils

        with _lock:
            utils._BASE_EVENT_MESSAGE["id"] = str(uuid.uuid4())
            original_s3_event(account_id, bucket, event_name, key)

    notifications._send_event_bridge_message = send_event_bridge_message

    original_create = FakeBucket.create_from_cloudformation_json.__func__  # type: ignore[attr-defined]

    def create_from_cloudformation_json(
        cls: Any, resource_name: str, cloudformation_json: Any, account_id: str, region_name: str, **kwargs: Any
    ) -> Any:
        bucket = original_create(cls, resource_name, cloudformation_json, account_id, region_name, **kwargs)
        config = cloudformation_json.get("Properties", {}).get("NotificationConfiguration", {})
        if config.get("EventBridgeConfiguration", {}).get("EventBridgeEnabled") in (True, "true"):
            s3_backends[account_id][get_partition(region_name)].put_bucket_notification_configuration(
                bucket.name, {"EventBridgeConfiguration": {}}
            )
        return bucket

    FakeBucket.create_from_cloudformation_json = classmethod(create_from_cloudformation_json)  # type: ignore[method-assign]
