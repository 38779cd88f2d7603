"""Stackline's moto extension: test tooling that closes gaps of moto 5.2.1 for the emulator tier.

Start it with ``python3 -m moto_ext --host 127.0.0.1 --port 5000`` (``PYTHONPATH`` pointing at the
folder that contains this package). Each patch lives in its own module, with a comment saying which
moto behaviour it changes and why; ``apply_patches()`` applies all of them once.
"""

from __future__ import annotations

import os
from importlib import import_module

# Order matters only where two patches wrap the same method: sfn_deployed wraps sfn_execution_name's
# StartExecution (an alias execution still gets a generated name).
PATCH_MODULES = (
    "lambda_node",  # Lambda Invoke runs nodejs* functions for real in a `node` subprocess
    "sfn_rlock",  # second execution in a region no longer fails with "cannot pickle '_thread.RLock'"
    "sfn_execution_name",  # StartExecution without `name` gets a uuid name instead of "None"
    "sfn_status_events",  # executions ending FAILED / TIMED_OUT / ABORTED put a status change on EventBridge
    "sfn_deployed",  # CloudFormation-deployed state machines, versions and aliases run (after sfn_execution_name)
    "cfn_cdk_deploy",  # what `cdk deploy` needs from CloudFormation (template URL, outputs, change sets, ...)
    "dynamodb_serialize",  # one lock around DynamoDB request handling (no concurrent transactions)
    "dynamodb_transact_undo",  # TransactWriteItems backs up the items it names, not whole tables
    "dynamodb_query_scope",  # Query reads the partition it names and sorts only its matches
    "events_delivery",  # rules deliver to Step Functions / Lambda targets; S3 → EventBridge from CloudFormation
    "scheduler_fire",  # CloudFormation creates Scheduler schedules; POST /moto-api/stackline/scheduler/fire fires one
    "ecs_run_task",  # the ecs:runTask integration calls moto's ECS with boto's parameter names
)

_applied: list[str] = []


def apply_patches() -> list[str]:
    """Applies every patch (idempotent) and returns the names of the applied patch modules.

    ``MOTO_EXT_SKIP=name,name`` leaves patches out (to reproduce moto's own behaviour).
    """
    if not _applied:
        skipped = {name.strip() for name in os.environ.get("MOTO_EXT_SKIP", "").split(",")}
        for name in PATCH_MODULES:
            if name in skipped:
                continue
            import_module(f"{__name__}.{name}").apply()
            _applied.append(name)
    return list(_applied)
