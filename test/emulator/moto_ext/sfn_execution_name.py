"""Patch: StartExecution without ``name`` gets a generated uuid name.

moto behaviour changed: with execution switched on (``execute_state_machine``),
``StepFunctionsParserBackend.start_execution`` (moto/stepfunctions/parser/models.py) formats the
execution ARN with the ``name`` argument as given, so an execution started without a name gets an
ARN ending in ``:None`` and the name ``None``; a second unnamed execution then even collides with
the first in the name-idempotency check (ExecutionAlreadyExists). AWS (and moto's plain backend,
``StepFunctionBackend.start_execution``) generate a uuid name instead; so do we, before delegating.
"""

from __future__ import annotations

import uuid
from typing import Any


def apply() -> None:
    from moto.stepfunctions.parser.models import StepFunctionsParserBackend

    original = StepFunctionsParserBackend.start_execution
    if getattr(original, "_moto_ext_patched", False):
        return

    def start_execution(
        self: Any,
        state_machine_arn: str,
        name: str | None = None,
        execution_input: str | None = None,
        trace_header: str | None = None,
    ) -> Any:
        return original(
            self,
            state_machine_arn,
            name or str(uuid.uuid4()),
            execution_input,
            trace_header,
        )

    start_execution._moto_ext_patched = True  # type: ignore[attr-defined]
    StepFunctionsParserBackend.start_execution = start_execution  # type: ignore[method-assign]
