"""Patch: what the CDK CLI's ``cdk deploy`` needs from CloudFormation (moto/cloudformation).

moto behaviour changed, each measured with aws-cdk 2.1148 against moto 5.2.1:

1. ``get_stack_from_s3_url`` takes the first host label as the bucket unless the host contains
   ``localhost``: the CLI's ``TemplateURL=http://127.0.0.1:PORT/<bucket>/<key>`` reads bucket
   ``127`` ("The specified bucket does not exist"). An IP host is path-style now.
2. A CREATE change set starts its stack from an empty template and never recomputes the outputs:
   deployed stacks had no Outputs. ``ChangeSet.apply`` now renders the outputs (and keeps the
   template) of the template it applied.
3. DescribeChangeSet of a missing change set answers "Stack with id … does not exist" and
   DeleteChangeSet fails with HTTP 500; change sets are looked up by name across all stacks. AWS
   answers ``ChangeSetNotFound`` and looks a name up within ``StackName``; so do we.
4. A parameter passed with ``UsePreviousValue`` takes the previous *resolved* value: the
   ``BootstrapVersion`` parameter (type ``AWS::SSM::Parameter::Value<String>``) is then re-resolved
   as an SSM parameter named after its value, and every update fails (HTTP 500). The previous
   *input* value (the SSM parameter's name) is passed instead.
5. ``UpdateTerminationProtection`` is not implemented (HTTP 500 for termination-protected stacks).
"""

from __future__ import annotations

import ipaddress
from typing import Any
from urllib.parse import urlparse


def _is_ip(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
        return True
    except ValueError:
        return False


def apply() -> None:
    from moto.cloudformation import models, responses
    from moto.cloudformation.exceptions import CloudFormationError
    from moto.core.responses import ActionResult, EmptyResult

    if getattr(responses.CloudFormationResponse, "_moto_ext_cdk_deploy", False):
        return

    class ChangeSetNotFound(CloudFormationError):
        code = "ChangeSetNotFoundException"  # the shape id; serialized with its error code ChangeSetNotFound

    # moto finds the service model that serializes an exception from the exception's module.
    ChangeSetNotFound.__module__ = "moto.cloudformation.exceptions"

    # 1. TemplateURL with an IP host is path-style.
    original_get_stack = responses.get_stack_from_s3_url

    def get_stack_from_s3_url(template_url: str, account_id: str, partition: str) -> str:
        url = urlparse(template_url)
        if url.hostname and _is_ip(url.hostname):
            from moto.s3.models import s3_backends

            bucket_name, key_name = url.path.lstrip("/").split("/", 1)
            key = s3_backends[account_id][partition].get_object(bucket_name, key_name)
            return key.value.decode("utf-8")  # type: ignore[union-attr]
        return original_get_stack(template_url, account_id, partition)

    responses.get_stack_from_s3_url = get_stack_from_s3_url  # type: ignore[assignment]

    # 2. Outputs of the template a change set applied.
    original_apply = models.ChangeSet.apply

    def apply_change_set(self: Any) -> None:
        original_apply(self)
        self.stack.template_dict = self.template_dict
        self.stack.output_map = self.stack._create_output_map()

    models.ChangeSet.apply = apply_change_set  # type: ignore[method-assign]

    # 3. Change sets by name within their stack; ChangeSetNotFound when missing.
    def find_change_set(response: Any) -> str:
        backend = response.cloudformation_backend
        name = response._get_param("ChangeSetName")
        stack_name = response._get_param("StackName")
        if name in backend.change_sets:
            return name
        stack_ids = (
            {s.stack_id for s in backend.stacks.values() if stack_name in (s.name, s.stack_id)}
            if stack_name
            else None
        )
        matches = [
            arn
            for arn, change_set in backend.change_sets.items()
            if change_set.change_set_name == name and (stack_ids is None or change_set.stack_id in stack_ids)
        ]
        if not matches:
            raise ChangeSetNotFound(f"ChangeSet [{name}] does not exist")
        return matches[-1]

    def describe_change_set(self: Any) -> ActionResult:
        arn = find_change_set(self)
        return ActionResult(self.cloudformation_backend.describe_change_set(change_set_name=arn))

    def delete_change_set(self: Any) -> EmptyResult:
        self.cloudformation_backend.delete_change_set(change_set_name=find_change_set(self))
        return EmptyResult()

    def execute_change_set(self: Any) -> EmptyResult:
        arn = find_change_set(self)
        self.cloudformation_backend.execute_change_set(stack_name=self._get_param("StackName"), change_set_name=arn)
        return EmptyResult()

    responses.CloudFormationResponse.describe_change_set = describe_change_set  # type: ignore[method-assign]
    responses.CloudFormationResponse.delete_change_set = delete_change_set  # type: ignore[method-assign]
    responses.CloudFormationResponse.execute_change_set = execute_change_set  # type: ignore[method-assign]

    # 4. UsePreviousValue takes the previous input value.
    original_create_change_set = responses.CloudFormationResponse.create_change_set

    def create_change_set(self: Any) -> ActionResult:
        parameters = self._get_param("Parameters", [])
        previous = [p for p in parameters if str(p.get("UsePreviousValue", "")).lower() == "true"]
        if previous and self._get_param("ChangeSetType", "CREATE") == "UPDATE":
            stack = self.cloudformation_backend.get_stack(self._get_param("StackName"))
            for parameter in previous:
                key = parameter["ParameterKey"]
                if key in (stack.parameters or {}):
                    parameter.pop("UsePreviousValue", None)
                    parameter["ParameterValue"] = stack.parameters[key]
        return original_create_change_set(self)

    responses.CloudFormationResponse.create_change_set = create_change_set  # type: ignore[method-assign]

    # 5. UpdateTerminationProtection.
    def update_termination_protection(self: Any) -> ActionResult:
        stack = self.cloudformation_backend.get_stack(self._get_param("StackName"))
        stack.enable_termination_protection = str(self._get_param("EnableTerminationProtection")).lower() == "true"
        return ActionResult({"StackId": stack.stack_id})

    responses.CloudFormationResponse.update_termination_protection = update_termination_protection  # type: ignore[attr-defined]
    responses.CloudFormationResponse._moto_ext_cdk_deploy = True  # type: ignore[attr-defined]
