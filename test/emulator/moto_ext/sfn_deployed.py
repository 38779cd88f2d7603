"""Patch: state machines deployed by CloudFormation run, with published versions and aliases.

moto behaviour changed (moto/stepfunctions/models.py, moto/cloudformation/parsing.py):

1. ``StateMachine.create_from_cloudformation_json`` (and update/delete) use the module-level
   ``stepfunctions_backends``, the plain backend. With execution switched on
   (``execute_state_machine``) the API is served by ``stepfunctions_parser_backends``, a separate
   store: a state machine CloudFormation created is invisible to StartExecution. The module global
   is replaced by a view that picks the backend the API uses (``responses.get_backend``).
2. ``GetAtt <StateMachine>.StateMachineRevisionId`` (what a ``StateMachineVersion`` refers to)
   raises; it now answers a revision id that changes with the definition and role.
3. ``AWS::StepFunctions::StateMachineVersion`` and ``AWS::StepFunctions::StateMachineAlias`` have no
   CloudFormation model (moto skips them with a warning). They are added: a version publishes one
   (``StateMachine.publish``), an alias routes to versions (``create_state_machine_alias``); ``Ref``
   and ``GetAtt Arn`` answer their ARNs; an update publishes a new version / re-routes the alias.
4. StartExecution on a version ARN fails with HTTP 500 (``StateMachineVersion`` has no
   ``_handle_name_input_idempotency``) and on an alias ARN with StateMachineDoesNotExist. AWS runs
   the version's definition (for an alias: the version its routing sends the execution to; with
   several, the heaviest) and lists the execution under the state machine. The patch does that by
   starting the execution on the state machine while its definition and role are the version's
   (the execution snapshots them at start), under a lock.
"""

from __future__ import annotations

import hashlib
import threading
from typing import Any

from .cfn_arn import ArnAttribute

_lock = threading.Lock()


_plain_backends: Any = None


def _active_backend(account_id: str, region_name: str) -> Any:
    """What ``moto.stepfunctions.responses.get_backend`` answers (it may import our view, so not called)."""
    from moto.core.config import default_user_config

    if default_user_config.get("stepfunctions", {}).get("execute_state_machine", False):
        from moto.stepfunctions.parser.models import stepfunctions_parser_backends

        return stepfunctions_parser_backends[account_id][region_name]
    return _plain_backends[account_id][region_name]


class _ActiveBackends:
    """``stepfunctions_backends[account][region]`` → the backend the Step Functions API uses."""

    def __getitem__(self, account_id: str) -> Any:
        class _Regions:
            def __getitem__(self, region_name: str) -> Any:
                return _active_backend(account_id, region_name)

        return _Regions()


def _revision_id(state_machine: Any) -> str:
    text = f"{state_machine.definition}\n{state_machine.roleArn}"
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:32]


def _state_machine_named(backend: Any, arn: str) -> Any:
    return next(sm for sm in backend.state_machines if sm.arn == arn)


def _resolve_version(backend: Any, arn: str) -> tuple[Any, Any] | None:
    """(state machine, version) for a version or alias ARN; None for a state machine ARN."""
    parts = arn.split(":")
    if len(parts) != 8:
        return None
    base = _state_machine_named(backend, ":".join(parts[:7]))
    qualifier = parts[7]
    if qualifier.isdigit():
        version = base.versions.get(int(qualifier))
    else:
        alias = backend.describe_state_machine_alias(arn)
        route = max(alias.routing_configuration, key=lambda r: int(r.get("weight", 0)))
        version = base.versions.get(int(route["stateMachineVersionArn"].split(":")[-1]))
    if version is None:
        from moto.stepfunctions.exceptions import StateMachineDoesNotExist

        raise StateMachineDoesNotExist(f"State Machine Does Not Exist: '{arn}'")
    return base, version


def apply() -> None:
    from moto.cloudformation import parsing
    from moto.core.common_models import CloudFormationModel
    from moto.stepfunctions import models
    from moto.stepfunctions.parser.models import StepFunctionsParserBackend

    if getattr(StepFunctionsParserBackend.start_execution, "_moto_ext_deployed", False):
        return

    # 1. CloudFormation creates state machines where the API looks for them.
    global _plain_backends
    _plain_backends = models.stepfunctions_backends
    models.stepfunctions_backends = _ActiveBackends()  # type: ignore[assignment]

    # 2. GetAtt StateMachineRevisionId.
    original_get_att = models.StateMachine.get_cfn_attribute

    def get_cfn_attribute(self: Any, attribute_name: str) -> Any:
        if attribute_name == "StateMachineRevisionId":
            return _revision_id(self)
        if attribute_name == "Arn":
            return self.arn
        return original_get_att(self, attribute_name)

    models.StateMachine.get_cfn_attribute = get_cfn_attribute  # type: ignore[method-assign]

    # 3. Versions and aliases as CloudFormation resources.
    class CfnStateMachineVersion(ArnAttribute, CloudFormationModel):
        def __init__(self, version: Any) -> None:
            self.version = version
            self.arn = version.arn

        @property
        def physical_resource_id(self) -> str:
            return self.arn

        @staticmethod
        def cloudformation_type() -> str:
            return "AWS::StepFunctions::StateMachineVersion"

        @staticmethod
        def cloudformation_name_type() -> str:
            return ""

        @classmethod
        def create_from_cloudformation_json(  # type: ignore[misc]
            cls, resource_name: str, cloudformation_json: Any, account_id: str, region_name: str, **kwargs: Any
        ) -> CfnStateMachineVersion:
            properties = cloudformation_json["Properties"]
            backend = _active_backend(account_id, region_name)
            state_machine = _state_machine_named(backend, properties["StateMachineArn"])
            state_machine.publish(description=properties.get("Description"))
            return cls(state_machine.latest_version)

        @classmethod
        def update_from_cloudformation_json(  # type: ignore[misc]
            cls,
            original_resource: Any,
            new_resource_name: str,
            cloudformation_json: Any,
            account_id: str,
            region_name: str,
        ) -> CfnStateMachineVersion:
            # A changed revision means a new version (CloudFormation replaces the resource).
            return cls.create_from_cloudformation_json(new_resource_name, cloudformation_json, account_id, region_name)

        @classmethod
        def delete_from_cloudformation_json(  # type: ignore[misc]
            cls, resource_name: str, cloudformation_json: Any, account_id: str, region_name: str
        ) -> None:
            backend = _active_backend(account_id, region_name)
            parts = resource_name.split(":")
            for state_machine in backend.state_machines:
                if state_machine.arn == ":".join(parts[:7]) and parts[-1].isdigit():
                    state_machine.versions.pop(int(parts[-1]), None)

    class CfnStateMachineAlias(ArnAttribute, CloudFormationModel):
        def __init__(self, alias: Any) -> None:
            self.alias = alias
            self.arn = alias.arn

        @property
        def physical_resource_id(self) -> str:
            return self.arn

        @staticmethod
        def cloudformation_type() -> str:
            return "AWS::StepFunctions::StateMachineAlias"

        @staticmethod
        def cloudformation_name_type() -> str:
            return "Name"

        @staticmethod
        def _routing(properties: dict[str, Any]) -> list[dict[str, Any]]:
            routes = properties.get("RoutingConfiguration")
            if routes is None:  # DeploymentPreference: all traffic to the target version
                target = properties["DeploymentPreference"]["StateMachineVersionArn"]
                routes = [{"StateMachineVersionArn": target, "Weight": 100}]
            return [{"stateMachineVersionArn": r["StateMachineVersionArn"], "weight": int(r["Weight"])} for r in routes]

        @classmethod
        def create_from_cloudformation_json(  # type: ignore[misc]
            cls, resource_name: str, cloudformation_json: Any, account_id: str, region_name: str, **kwargs: Any
        ) -> CfnStateMachineAlias:
            properties = cloudformation_json["Properties"]
            backend = _active_backend(account_id, region_name)
            alias = backend.create_state_machine_alias(
                properties.get("Name", resource_name), cls._routing(properties), properties.get("Description")
            )
            return cls(alias)

        @classmethod
        def update_from_cloudformation_json(  # type: ignore[misc]
            cls,
            original_resource: Any,
            new_resource_name: str,
            cloudformation_json: Any,
            account_id: str,
            region_name: str,
        ) -> CfnStateMachineAlias:
            original_resource.alias.update(routing_configuration=cls._routing(cloudformation_json["Properties"]))
            return original_resource

        @classmethod
        def delete_from_cloudformation_json(  # type: ignore[misc]
            cls, resource_name: str, cloudformation_json: Any, account_id: str, region_name: str
        ) -> None:
            backend = _active_backend(account_id, region_name)
            base_arn, _, name = resource_name.rpartition(":")
            for state_machine in backend.state_machines:
                if state_machine.arn == base_arn:
                    state_machine.aliases.pop(name, None)

    for cached in (parsing.get_model_list, parsing.get_model_map, parsing.get_name_type_map):
        cached.cache_clear()

    # 4. StartExecution on a version or alias ARN.
    original_start = StepFunctionsParserBackend.start_execution

    def start_execution(
        self: Any,
        state_machine_arn: str,
        name: str | None = None,
        execution_input: str | None = None,
        trace_header: str | None = None,
    ) -> Any:
        resolved = _resolve_version(self, state_machine_arn)
        if resolved is None:
            return original_start(self, state_machine_arn, name, execution_input, trace_header)
        base, version = resolved
        with _lock:
            saved = (base.definition, base.roleArn)
            base.definition, base.roleArn = version.definition, version.roleArn
            try:
                return original_start(self, base.arn, name, execution_input, trace_header)
            finally:
                base.definition, base.roleArn = saved

    start_execution._moto_ext_deployed = True  # type: ignore[attr-defined]
    StepFunctionsParserBackend.start_execution = start_execution  # type: ignore[method-assign]
