"""Patch: deep-copying a state machine no longer copies its executions or its backend.

moto behaviour changed: ``StepFunctionsParserBackend.start_execution``
(moto/stepfunctions/parser/models.py) snapshots the state machine with
``copy.deepcopy(state_machine)``. The ``StateMachine`` object holds ``executions`` (each a parser
``Execution`` whose ``exec_worker`` is a live thread with an ``Environment`` holding an RLock) and
``backend`` (the whole region backend, i.e. every other state machine and its executions). Once any
execution exists in the region, the deepcopy reaches an RLock and raises
``TypeError: cannot pickle '_thread.RLock' object``: the second StartExecution answers HTTP 500
(moto issue 10077, fixed upstream in 5.2.3 by seeding the deepcopy memo).

Fix: give moto's ``StateMachineInstance`` (base of ``StateMachine`` and ``StateMachineVersion``) a
``__deepcopy__`` that gives the clone an empty ``executions`` list and shares ``backend`` instead of
copying it. The clone is only the definition snapshot for the new execution, so neither belongs in
it; the original object is not modified.
"""

from __future__ import annotations

import copy
from typing import Any

_SHARED = ("backend",)  # referenced, not copied
_EMPTIED = ("executions",)  # runtime state: the clone starts with none


def _deepcopy_without_executions(self: Any, memo: dict[int, Any]) -> Any:
    clone = self.__class__.__new__(self.__class__)
    memo[id(self)] = clone
    for key, value in self.__dict__.items():
        if key in _SHARED:
            setattr(clone, key, value)
        elif key in _EMPTIED:
            setattr(clone, key, [])
        else:
            setattr(clone, key, copy.deepcopy(value, memo))
    return clone


def apply() -> None:
    from moto.stepfunctions.models import StateMachineInstance

    StateMachineInstance.__deepcopy__ = _deepcopy_without_executions  # type: ignore[attr-defined]
