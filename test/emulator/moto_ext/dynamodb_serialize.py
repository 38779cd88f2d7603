"""Patch: one lock around moto's DynamoDB request handling.

moto behaviour changed: moto_server serves requests on several threads but does not isolate
DynamoDB calls from each other, so two concurrent TransactWriteItems (or conditional writes) can
both pass their conditions and both write (measured: 50 racing conditional version allocations
produced duplicate numbers). Real DynamoDB serializes conflicting writes, so the emulator must too.
We wrap ``moto.dynamodb.responses.DynamoHandler.call_action`` (the entry point of every DynamoDB
API call) in one process-wide lock. Other services keep their threads: Step Functions and Lambda
call back into the server while a request is in flight.
"""

from __future__ import annotations

import threading
from typing import Any

_lock = threading.RLock()


def apply() -> None:
    from moto.dynamodb.responses import DynamoHandler

    original = DynamoHandler.call_action
    if getattr(original, "_moto_ext_patched", False):
        return

    def call_action(self: Any) -> Any:
        with _lock:
            return original(self)

    call_action._moto_ext_patched = True  # type: ignore[attr-defined]
    DynamoHandler.call_action = call_action  # type: ignore[method-assign]
