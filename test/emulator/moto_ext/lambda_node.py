"""Patch: Lambda Invoke runs ``nodejs*`` functions for real, in a ``node`` subprocess (no Docker).

moto behaviour changed: ``moto.awslambda.models.LambdaFunction.invoke`` runs the function's code
in a Docker container (``_invoke_lambda``); without Docker it answers
``FunctionError: Handled`` with a docker error message, so nothing a pipeline step does can be
tested. Every invocation path goes through ``LambdaFunction.invoke``: the Lambda API (``Invoke``,
``InvokeAsync``), S3/SNS/SQS/Kinesis triggers and moto's Step Functions interpreter, whose
Task states (``arn:aws:states:::lambda:invoke`` and plain function-ARN resources) call the Lambda
API of this same server through boto3 at ``localhost:$MOTO_PORT``
(``stepfunctions/parser/asl/component/state/exec/state_task/lambda_eval_utils.py``).

For a ``Zip`` function whose runtime starts with ``nodejs`` the replacement ``invoke``:
  1. unzips ``LambdaFunction.code_bytes`` (moto keeps the uploaded zip there) once into a cache
     directory keyed by the code's sha256, below a ``node_modules/@aws-sdk`` that stands in for
     the AWS SDK v3 the Lambda Node.js runtime ships (see ``_runtime_root``);
  2. runs ``node node_bootstrap.mjs`` with the event JSON on stdin, the function's environment
     variables plus AWS_REGION, test credentials and ``AWS_ENDPOINT_URL`` pointing back at this moto
     (so SDK clients inside the handler talk to the emulator); the bootstrap imports the file and
     export named by ``Handler`` and writes the outcome to a result file (stdout/stderr are logs);
  3. kills the process group when the function's ``Timeout`` passes;
  4. answers like real Lambda: the JSON result, or for a thrown error the header
     ``X-Amz-Function-Error: Unhandled`` and ``{"errorType", "errorMessage", "trace"}``, which
     moto's Step Functions interpreter turns into a task failure with Error = errorType and
     Cause = that payload, so ASL Retry/Catch on custom error names work.
Other runtimes and image functions keep moto's behaviour.
"""

from __future__ import annotations

import atexit
import base64
import hashlib
import json
import os
import shutil
import signal
import subprocess
import tempfile
import threading
import time
import uuid
import zipfile
from io import BytesIO
from pathlib import Path
from typing import Any

BOOTSTRAP = Path(__file__).with_name("node_bootstrap.mjs")
LOG_TAIL_BYTES = 4096  # real Lambda returns the last 4 KB of the log with LogType=Tail

_extract_lock = threading.Lock()
_running: set[int] = set()  # process groups of invocations in flight


@atexit.register
def _kill_running_invocations() -> None:
    """When moto stops, handlers still running must not outlive it."""
    for pgid in list(_running):
        try:
            os.killpg(pgid, signal.SIGKILL)
        except OSError:
            pass


def _is_node_zip_function(fn: Any) -> bool:
    return (
        str(getattr(fn, "run_time", None) or "").startswith("nodejs")
        and getattr(fn, "package_type", "Zip") == "Zip"
        and bool(getattr(fn, "code_bytes", b""))
    )


def _header(headers: Any, name: str) -> str | None:
    if not headers:
        return None
    value = headers.get(name)  # werkzeug headers are case-insensitive
    if value is None and hasattr(headers, "items"):
        for key, candidate in headers.items():
            if key.lower() == name.lower():
                return candidate
    return value


def _cache_root() -> Path:
    configured = os.environ.get("MOTO_EXT_LAMBDA_CACHE")
    if configured:
        return Path(configured)
    return Path(tempfile.gettempdir()) / f"moto-ext-lambda-{os.getuid()}"


def _runtime_modules() -> Path | None:
    """The ``node_modules`` whose ``@aws-sdk`` stands in for the SDK the Lambda runtime ships.

    ``MOTO_EXT_LAMBDA_RUNTIME_MODULES`` if set (empty: none), else this project's ``node_modules``.
    """
    configured = os.environ.get("MOTO_EXT_LAMBDA_RUNTIME_MODULES")
    if configured is not None:
        return Path(configured) if configured else None
    project = Path(__file__).resolve().parents[3] / "node_modules"
    return project if (project / "@aws-sdk").is_dir() else None


def _runtime_root() -> Path:
    """Where task roots are unzipped, beside a ``node_modules`` holding only the runtime's SDK.

    Real Lambda Node.js runtimes (18 and later) ship AWS SDK v3 in ``/var/runtime/node_modules``
    and resolve imports there, ES modules included, so bundles leave ``@aws-sdk/*`` out (CDK's
    ``NodejsFunction`` default). Here the code's imports find it by walking up from the task
    root: ``<cache>/runtime-<hash>/node_modules/@aws-sdk`` links to the project's ``@aws-sdk``
    and nothing else, so a bundle that needs any other package fails as it would on AWS.
    """
    modules = _runtime_modules()
    if modules is None:
        return _cache_root() / "no-runtime-sdk"
    key = hashlib.sha256(str(modules.resolve()).encode()).hexdigest()[:12]
    root = _cache_root() / f"runtime-{key}"
    link = root / "node_modules" / "@aws-sdk"
    if not link.exists():
        link.parent.mkdir(parents=True, exist_ok=True)
        try:
            link.symlink_to((modules / "@aws-sdk").resolve(), target_is_directory=True)
        except FileExistsError:  # another thread or moto process made it first
            pass
    return root


def _task_root(code_bytes: bytes) -> Path:
    """Unzips the code once per sha256; safe against other threads and other moto processes."""
    root = _runtime_root()
    target = root / hashlib.sha256(code_bytes).hexdigest()
    if target.is_dir():
        return target
    with _extract_lock:
        if target.is_dir():
            return target
        root.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(prefix=".extract-", dir=root))
        try:
            with zipfile.ZipFile(BytesIO(code_bytes)) as archive:
                archive.extractall(staging)  # drops absolute and ".." path parts
            staging.chmod(0o755)
            try:
                staging.rename(target)  # atomic; another process may have won the race
            except OSError:
                if not target.is_dir():
                    raise
        finally:
            shutil.rmtree(staging, ignore_errors=True)
    return target


def _environment(fn: Any, task_root: Path, log_stream: str) -> dict[str, str]:
    from moto import settings

    port = settings.moto_server_port()
    env = {
        "PATH": os.environ.get("PATH", "/usr/local/bin:/usr/bin:/bin"),
        "HOME": "/tmp",
        "LANG": "en_US.UTF-8",
        "TZ": ":UTC",
        "AWS_REGION": fn.region,
        "AWS_DEFAULT_REGION": fn.region,
        "AWS_ACCESS_KEY_ID": "test",
        "AWS_SECRET_ACCESS_KEY": "test",
        "AWS_ENDPOINT_URL": f"http://127.0.0.1:{port}",
        "AWS_EXECUTION_ENV": f"AWS_Lambda_{fn.run_time}",
        "AWS_LAMBDA_FUNCTION_NAME": fn.function_name,
        "AWS_LAMBDA_FUNCTION_VERSION": str(fn.version),
        "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": str(fn.memory_size),
        "AWS_LAMBDA_LOG_GROUP_NAME": fn.logs_group_name,
        "AWS_LAMBDA_LOG_STREAM_NAME": log_stream,
        "LAMBDA_TASK_ROOT": str(task_root),
        "_HANDLER": fn.handler or "",
        "MOTO_PORT": str(port),
    }
    env.update({key: str(value) for key, value in (fn.environment_vars or {}).items()})
    return env


def _error(error_type: str, message: str) -> bytes:
    return json.dumps({"errorType": error_type, "errorMessage": message}, separators=(",", ":")).encode()


def run_node_function(fn: Any, event: bytes) -> tuple[bytes, bool, str]:
    """Runs one invocation; returns (payload, function_error, logs)."""
    request_id = str(uuid.uuid4())
    timeout = float(fn.timeout or 3)
    node = os.environ.get("MOTO_EXT_NODE") or shutil.which("node")
    if not node:
        return _error("Runtime.Unavailable", "moto_ext: `node` was not found on PATH"), True, ""
    task_root = _task_root(fn.code_bytes)
    now = time.gmtime()
    log_stream = f"{now.tm_year}/{now.tm_mon:02d}/{now.tm_mday:02d}/[{fn.version}]{request_id.replace('-', '')}"
    result_fd, result_path = tempfile.mkstemp(prefix="moto-ext-result-", suffix=".json")
    os.close(result_fd)
    invocation = {
        "taskRoot": str(task_root),
        "handler": fn.handler or "",
        "resultFile": result_path,
        "requestId": request_id,
        "invokedFunctionArn": fn.function_arn,
        "deadlineMs": int((time.time() + timeout) * 1000),
    }
    started = time.monotonic()
    try:
        process = subprocess.Popen(
            [node, str(BOOTSTRAP), json.dumps(invocation)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            cwd=task_root,
            env=_environment(fn, task_root, log_stream),
            start_new_session=True,  # own process group: a timeout kills the handler's children too
        )
        _running.add(process.pid)
        timed_out = False
        try:
            output, _ = process.communicate(event, timeout=timeout)
        except subprocess.TimeoutExpired:
            timed_out = True
            try:
                os.killpg(process.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            output, _ = process.communicate()
        finally:
            _running.discard(process.pid)
        logs = output.decode("utf-8", errors="replace")
        duration_ms = (time.monotonic() - started) * 1000
        logs = f"START RequestId: {request_id} Version: {fn.version}\n{logs}"
        logs += f"END RequestId: {request_id}\nREPORT RequestId: {request_id}\tDuration: {duration_ms:.2f} ms\n"
        if timed_out:
            message = f"RequestId: {request_id} Error: Task timed out after {timeout:.2f} seconds"
            return _error("Sandbox.Timedout", message), True, logs
        try:
            outcome = json.loads(Path(result_path).read_text("utf-8"))
        except (OSError, ValueError):
            message = f"RequestId: {request_id} Error: Runtime exited with error: exit status {process.returncode}"
            return _error("Runtime.ExitError", message), True, logs
        if outcome.get("ok"):
            return outcome["payload"].encode("utf-8"), False, logs
        return json.dumps(outcome["error"], separators=(",", ":")).encode("utf-8"), True, logs
    finally:
        try:
            os.unlink(result_path)
        except OSError:
            pass


def apply() -> None:
    from moto.awslambda.exceptions import LambdaClientError
    from moto.awslambda.models import LambdaFunction

    original = LambdaFunction.invoke
    if getattr(original, "_moto_ext_patched", False):
        return

    def invoke(self: Any, body: Any, request_headers: Any, response_headers: Any) -> bytes:
        if not _is_node_zip_function(self):
            return original(self, body, request_headers, response_headers)

        event = body.encode("utf-8") if isinstance(body, str) else (body or b"")
        if not event.strip():
            event = b"{}"
        try:
            json.loads(event)
        except ValueError as error:
            raise LambdaClientError(
                "InvalidRequestContentException", f"Could not parse request body into json: {error}"
            )

        invocation_type = _header(request_headers, "x-amz-invocation-type") or "RequestResponse"
        if invocation_type == "DryRun":
            return b""
        if invocation_type == "Event":  # asynchronous: accept now, run in the background
            threading.Thread(target=self._moto_ext_run_and_log, args=(event,), daemon=True).start()
            return b""

        payload, function_error, logs = self._moto_ext_run_and_log(event)
        response_headers["x-amz-executed-version"] = str(self.version)
        if function_error:
            response_headers["x-amz-function-error"] = "Unhandled"
        tail = logs.encode("utf-8")[-LOG_TAIL_BYTES:]
        response_headers["x-amz-log-result"] = base64.b64encode(tail).decode("ascii")
        return payload

    def run_and_log(self: Any, event: bytes) -> tuple[bytes, bool, str]:
        payload, function_error, logs = run_node_function(self, event)
        try:
            self.logs_backend.ensure_log_group(self.logs_group_name)
            self.save_logs(logs)
        except Exception:  # logs are best effort, as in moto
            pass
        return payload, function_error, logs

    invoke._moto_ext_patched = True  # type: ignore[attr-defined]
    LambdaFunction.invoke = invoke  # type: ignore[method-assign]
    LambdaFunction._moto_ext_run_and_log = run_and_log  # type: ignore[attr-defined]
