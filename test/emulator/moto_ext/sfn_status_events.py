"""Patch: an execution that ends FAILED, TIMED_OUT or ABORTED puts its status change on EventBridge.

moto behaviour changed (moto/stepfunctions/parser/backend/execution.py): moto's Step Functions
interpreter never emits "Step Functions Execution Status Change" events, so an EventBridge rule on
them (``source: aws.states``) never fires. Here, when an execution of the interpreter ends FAILED or
TIMED_OUT (``BaseExecutionWorkerCommunication.terminated``), or is stopped by ``StopExecution``
(``Execution.stop`` while it runs; the interpreter itself only notices the stop when its current
state returns), one event is put on the account's default bus, shaped like AWS's: source
``aws.states``, detail-type ``Step Functions Execution Status Change``, resources
``[executionArn]`` and detail ``{executionArn, stateMachineArn, name, status, startDate, stopDate,
input, output, inputDetails, outputDetails, error, cause}`` (dates in epoch milliseconds, input and
output as JSON text). Rules on the bus then deliver it to their targets (``events_delivery``).
RUNNING and SUCCEEDED changes are not emitted (nothing here listens to them).
"""

from __future__ import annotations

import datetime
import json
import sys
from typing import Any

_ENDED = ("FAILED", "TIMED_OUT", "ABORTED")


def _millis(value: Any) -> int | None:
    if value is None:
        return None
    if isinstance(value, datetime.datetime):
        if value.tzinfo is None:
            value = value.replace(tzinfo=datetime.timezone.utc)
        return int(value.timestamp() * 1000)
    return int(float(value) * 1000)


def _text(value: Any) -> str | None:
    if value is None:
        return None
    return value if isinstance(value, str) else json.dumps(value)


def status_change_event(execution: Any, status: str) -> dict[str, Any]:
    """The PutEvents entry AWS emits when ``execution`` changes to ``status``."""
    detail = {
        "executionArn": execution.exec_arn,
        # A version's or alias's execution reports the state machine's own ARN, as on AWS.
        "stateMachineArn": ":".join(execution.state_machine.arn.split(":")[:7]),
        "name": execution.name,
        "status": status,
        "startDate": _millis(execution.start_date),
        "stopDate": _millis(execution.stop_date or datetime.datetime.now(tz=datetime.timezone.utc)),
        "input": getattr(execution, "execution_input", None) or _text(execution.input_data),
        "output": _text(execution.output) if status == "SUCCEEDED" else None,
        "inputDetails": {"included": True},
        "outputDetails": {"included": True} if status == "SUCCEEDED" else None,
        "error": execution.error,
        "cause": execution.cause,
    }
    return {
        "Source": "aws.states",
        "DetailType": "Step Functions Execution Status Change",
        "Detail": json.dumps(detail),
        "Resources": [execution.exec_arn],
        "EventBusName": "default",
    }


def _emit(execution: Any, status: str) -> None:
    from moto.events.models import events_backends

    if getattr(execution, "_moto_ext_status_emitted", False):
        return
    execution._moto_ext_status_emitted = True
    try:
        events_backends[execution.account_id][execution.region_name].put_events([status_change_event(execution, status)])
    except Exception as error:  # the execution's own outcome must not depend on EventBridge
        print(f"moto_ext: status change of {execution.exec_arn}: {error}", file=sys.stderr)


def apply() -> None:
    from moto.stepfunctions.parser.asl.eval.program_state import ProgramStopped
    from moto.stepfunctions.parser.backend.execution import BaseExecutionWorkerCommunication, Execution

    if getattr(BaseExecutionWorkerCommunication.terminated, "_moto_ext_patched", False):
        return

    original_terminated = BaseExecutionWorkerCommunication.terminated

    def terminated(self: Any) -> None:
        original_terminated(self)
        status = self.execution.exec_status
        value = getattr(status, "value", status)
        if value in _ENDED:
            _emit(self.execution, value)

    terminated._moto_ext_patched = True  # type: ignore[attr-defined]
    BaseExecutionWorkerCommunication.terminated = terminated  # type: ignore[method-assign]

    original_stop = Execution.stop

    def stop(self: Any, stop_date: datetime.datetime, error: str | None, cause: str | None) -> None:
        original_stop(self, stop_date=stop_date, error=error, cause=cause)
        worker = self.exec_worker
        if worker is not None and isinstance(worker.env.program_state(), ProgramStopped):
            if self.stop_date is None:
                self.stop_date = stop_date
            _emit(self, "ABORTED")

    Execution.stop = stop  # type: ignore[method-assign]
