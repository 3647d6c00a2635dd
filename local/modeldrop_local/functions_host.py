"""Run the template's functions the way Lambda does: warm worker processes, one request at a time each.

A worker is a spawned Python process with the function's environment, its layers and CodeUri on
sys.path, and its handler imported once (the cold start); then it answers invocations over a pipe
with a Lambda-shaped context. An invocation that outlives the function's Timeout kills the worker
(the next one starts cold), exactly like Lambda's sandbox reset. Errors come back in Lambda's shape.
"""

from __future__ import annotations

import contextlib
import importlib
import json
import os
import select
import subprocess
import sys
import threading
import time
import traceback
import uuid
from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

if TYPE_CHECKING:  # the worker process imports this module too: keep its cold start light
    from modeldrop_local.stack import FunctionSpec

_PACKAGE_PARENT = Path(__file__).resolve().parents[1]
INIT_TIMEOUT_S = 10.0


@dataclass(frozen=True)
class InvokeResult:
    """What Lambda's Invoke returns: the payload bytes, and whether it is a function error."""

    payload: bytes
    function_error: bool
    request_id: str
    duration_ms: float


def error_payload(error_type: str, message: str, stack: list[str] | None = None) -> bytes:
    return json.dumps({"errorMessage": message, "errorType": error_type, "stackTrace": stack or []}).encode()


class LambdaContext:
    """The attributes and method handlers read from Lambda's context object."""

    def __init__(self, spec: Mapping[str, Any], request_id: str, deadline: float) -> None:
        self.aws_request_id = request_id
        self.function_name = spec["name"]
        self.function_version = "$LATEST"
        self.invoked_function_arn = spec["arn"]
        self.memory_limit_in_mb = spec["memory_mb"]
        self.log_group_name = f"/aws/lambda/{spec['name']}"
        self.log_stream_name = f"local/{os.getpid()}"
        self.identity = None
        self.client_context = None
        self._deadline = deadline

    def get_remaining_time_in_millis(self) -> int:
        return max(0, int((self._deadline - time.time()) * 1000))


def _worker_main(requests: IO[str], replies: IO[str], spec: dict[str, Any]) -> None:
    """Child process: become the function's sandbox, then answer invocations until stdin closes."""

    def reply(kind: str, body: bytes) -> None:
        replies.write(json.dumps({"kind": kind, "body": body.decode("utf-8", "replace")}) + "\n")
        replies.flush()

    os.environ.update(spec["environment"])
    for path in reversed([spec["code_dir"], *spec["layer_dirs"]]):
        sys.path.insert(0, path)
    module_name, _, function_name = spec["handler"].rpartition(".")
    try:
        handler = getattr(importlib.import_module(module_name), function_name)
    except Exception as error:  # an import failure is Lambda's Runtime.ImportModuleError, for every request
        reply(
            "init_error",
            error_payload("Runtime.ImportModuleError", f"Unable to import module '{module_name}': {error}"),
        )
        return
    reply("ready", b"")
    for line in requests:
        request = json.loads(line)
        context = LambdaContext(spec, request["id"], request["deadline"])
        try:
            event = json.loads(request["payload"]) if request["payload"] else {}
            result = handler(event, context)
            answer = ("ok", json.dumps(result).encode())
        except Exception as error:  # the function's own failure is the invocation's answer, as on Lambda
            stack = traceback.format_tb(error.__traceback__)
            answer = ("error", error_payload(type(error).__name__, str(error), stack))
        sys.stdout.flush()
        sys.stderr.flush()
        reply(*answer)


# Fields of the functions' structured logs worth a place on the console line.
_CONSOLE_FIELDS = ("model", "deployment_id", "action", "status", "reason")


def console_line(function: str, line: str) -> str | None:
    """A function's log line as the `local up` console shows it, None to leave it out.

    Powertools' JSON records become `function LEVEL message key=value…`; CloudWatch metrics (EMF
    records) and logged events (non-text messages below WARNING) stay out; anything else (prints,
    tracebacks) passes as it is.
    """
    text = line.rstrip("\n")
    if not text.strip():
        return None
    try:
        record = json.loads(text)
    except ValueError:
        return f"{function}: {text}"
    if not isinstance(record, dict) or "message" not in record:
        return None if isinstance(record, dict) and "_aws" in record else f"{function}: {text}"
    level = str(record.get("level", "INFO"))
    message = record["message"]
    if not isinstance(message, str):
        if level in ("DEBUG", "INFO"):
            return None
        message = json.dumps(message)
    details = "".join(f" {key}={record[key]}" for key in _CONSOLE_FIELDS if record.get(key) is not None)
    condensed = f"{function} {level} {message}{details}"
    if record.get("exception"):
        condensed += "\n" + str(record["exception"])
    return condensed


def _copy_to_console(function: str, stream: IO[str]) -> None:
    for line in stream:
        condensed = console_line(function, line)
        if condensed is not None:
            sys.stdout.write(condensed + "\n")
            sys.stdout.flush()


class _Worker:
    def __init__(
        self,
        spec: FunctionSpec,
        base_environment: Mapping[str, str],
        log_dir: Path | None,
        condensed_console: bool = False,
    ) -> None:
        self.spec = spec
        environment = dict(base_environment)
        environment.update(spec.environment)
        environment.update(
            {
                "AWS_LAMBDA_FUNCTION_NAME": spec.name,
                "AWS_LAMBDA_FUNCTION_VERSION": "$LATEST",
                "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": str(spec.memory_mb),
                "AWS_LAMBDA_LOG_GROUP_NAME": f"/aws/lambda/{spec.name}",
                "AWS_EXECUTION_ENV": "AWS_Lambda_python3.11",
                "LAMBDA_TASK_ROOT": str(spec.code_dir),
                "POWERTOOLS_TRACE_DISABLED": "true",
            }
        )
        spec_json = json.dumps(
            {
                "name": spec.name,
                "arn": spec.arn,
                "memory_mb": spec.memory_mb,
                "handler": spec.handler,
                "code_dir": str(spec.code_dir),
                "layer_dirs": [str(path) for path in spec.layer_dirs],
                "environment": environment,
            }
        )
        # Replies travel on their own pipe: the function's prints and logs keep stdout/stderr, as on Lambda.
        reply_read, reply_write = os.pipe()
        child_environment = dict(os.environ)
        child_environment.update(environment)
        # The worker module itself must import in the child, installed or not (pytest's pythonpath).
        child_environment["PYTHONPATH"] = os.pathsep.join(
            filter(None, [str(_PACKAGE_PARENT), os.environ.get("PYTHONPATH", "")])
        )
        # Like CloudWatch Logs: one log file per function when a log dir is given, else this console
        # (as written, or condensed to one readable line per record).
        log_file: IO[bytes] | int | None = None
        if log_dir is not None:
            log_dir.mkdir(parents=True, exist_ok=True)
            log_file = (log_dir / f"{spec.name}.log").open("ab")
        elif condensed_console:
            log_file = subprocess.PIPE
        self.process = subprocess.Popen(
            [sys.executable, "-m", "modeldrop_local.functions_host", str(reply_write), spec_json],
            stdin=subprocess.PIPE,
            stdout=log_file,
            stderr=subprocess.STDOUT if log_file is not None else None,
            pass_fds=(reply_write,),
            env=child_environment,
            text=True,
        )
        os.close(reply_write)
        if log_file is subprocess.PIPE:
            assert self.process.stdout is not None
            threading.Thread(
                target=_copy_to_console,
                args=(spec.logical_id, self.process.stdout),
                daemon=True,
                name=f"console-{spec.logical_id}",
            ).start()
        elif log_file is not None and not isinstance(log_file, int):
            log_file.close()  # the child holds its own descriptor
        self._replies = os.fdopen(reply_read, "r")
        self._ready = False

    def invoke(self, payload: bytes, request_id: str) -> tuple[str, bytes]:
        if not self._ready:
            # Lambda's init phase (imports) has its own limit, 10 s, before the handler's timeout starts.
            kind, body = self._receive(time.time() + max(INIT_TIMEOUT_S, self.spec.timeout_s))
            if kind != "ready":
                return kind, body
            self._ready = True
        deadline = time.time() + self.spec.timeout_s
        assert self.process.stdin is not None
        request = {"id": request_id, "payload": payload.decode("utf-8", "replace"), "deadline": deadline}
        try:
            self.process.stdin.write(json.dumps(request) + "\n")
            self.process.stdin.flush()
        except BrokenPipeError:
            return "crashed", b""
        return self._receive(deadline)

    def _receive(self, deadline: float) -> tuple[str, bytes]:
        readable, _, _ = select.select([self._replies], [], [], max(0.0, deadline - time.time()))
        if not readable:
            return "timeout", b""
        line = self._replies.readline()
        if not line:
            return "crashed", b""
        reply = json.loads(line)
        return str(reply["kind"]), str(reply["body"]).encode()

    def alive(self) -> bool:
        return self.process.poll() is None

    def stop(self) -> None:
        if self.process.stdin is not None:
            with contextlib.suppress(BrokenPipeError):
                self.process.stdin.close()
        try:
            self.process.wait(timeout=2)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(timeout=5)
        self._replies.close()

    def kill(self) -> None:
        self.process.kill()
        self.process.wait(timeout=5)
        if self.process.stdin is not None:
            with contextlib.suppress(BrokenPipeError):
                self.process.stdin.close()
        self._replies.close()


# Lambda runs as many invocations of a function at once as its ReservedConcurrentExecutions allow (else
# up to the account's unreserved pool, 1000 by default). On one machine each invocation is a process, so
# a function without a reservation runs at most this many at once here; more wait for a free worker.
DEFAULT_CONCURRENCY = 10


class FunctionsHost:
    """Invokes the stack's functions in warm worker processes, up to each function's concurrency at once.

    `spare_workers` workers per function are kept started ahead of demand (their handler imported while
    nothing waits on them), so an event is not held up by a cold start while the machine is busy: on
    Lambda each concurrent invocation gets its own sandbox, here they would share two cores.
    """

    def __init__(
        self,
        functions: Mapping[str, FunctionSpec],
        base_environment: Mapping[str, str],
        default_concurrency: int = DEFAULT_CONCURRENCY,
        log_dir: Path | None = None,
        condensed_console: bool = False,
        spare_workers: int = 0,
    ) -> None:
        """log_dir: each function's log in log_dir/<name>.log; else on this console, as written or,
        with condensed_console, one readable line per record (see console_line)."""
        self.log_dir = log_dir
        self.condensed_console = condensed_console
        self._functions = dict(functions)
        self._base_environment = dict(base_environment)
        self._idle: dict[str, list[_Worker]] = {}
        self._slots: dict[str, threading.BoundedSemaphore] = {}
        self._lock = threading.Lock()
        self._default_concurrency = default_concurrency
        self._spare_workers = spare_workers
        self._closed = False
        # The latest invocations (function, request id, failed), bounded: `local up` may run for days.
        self.invocations: deque[tuple[str, str, bool]] = deque(maxlen=1000)

    def spec(self, name_or_arn: str) -> FunctionSpec:
        name = name_or_arn.split(":")[6] if name_or_arn.startswith("arn:") else name_or_arn
        for spec in self._functions.values():
            if name in (spec.name, spec.logical_id):
                return spec
        raise KeyError(f"Function not found: {name_or_arn}")

    def concurrency(self, spec: FunctionSpec) -> int:
        if spec.reserved_concurrency is not None:
            return max(1, spec.reserved_concurrency)
        return self._default_concurrency

    def invoke(self, name_or_arn: str, payload: bytes) -> InvokeResult:
        """Run one invocation; raises KeyError for an unknown function."""
        spec = self.spec(name_or_arn)
        request_id = str(uuid.uuid4())
        started = time.perf_counter()
        with self._lock:
            slots = self._slots.setdefault(spec.name, threading.BoundedSemaphore(self.concurrency(spec)))
        with slots:
            worker = self._take(spec)
            kind, body = worker.invoke(payload, request_id)
            if kind in ("ok", "error"):
                self._give_back(worker)
            elif kind == "timeout":
                worker.kill()
                body = error_payload(
                    "Sandbox.Timedout", f"{request_id} Task timed out after {spec.timeout_s:.2f} seconds"
                )
            elif kind == "crashed":
                worker.kill()
                body = error_payload("Runtime.ExitError", f"RequestId: {request_id} Error: Runtime exited")
            else:  # init_error: a broken handler stays broken; start fresh next time in case it was fixed
                worker.stop()
        failed = kind != "ok"
        self.invocations.append((spec.name, request_id, failed))
        return InvokeResult(body, failed, request_id, (time.perf_counter() - started) * 1000)

    def invoke_async(self, name_or_arn: str, payload: bytes) -> threading.Thread:
        """Event invocation (S3 notifications, InvocationType=Event): runs in the background."""
        self.spec(name_or_arn)
        thread = threading.Thread(target=self.invoke, args=(name_or_arn, payload), daemon=True)
        thread.start()
        return thread

    def _take(self, spec: FunctionSpec) -> _Worker:
        with self._lock:
            if self._closed:
                raise RuntimeError("functions host is stopped")
            idle = self._idle.setdefault(spec.name, [])
            taken = None
            while idle and taken is None:
                worker = idle.pop()
                if worker.alive():
                    taken = worker
            missing = self._spare_workers - len(idle)
        if taken is None:
            taken = self._start_worker(spec)
        # Start the replacements now (a process spawn, a few ms); they import while this one works.
        for _ in range(missing):
            self._give_back(self._start_worker(spec))
        return taken

    def _start_worker(self, spec: FunctionSpec) -> _Worker:
        return _Worker(spec, self._base_environment, self.log_dir, self.condensed_console)

    def _give_back(self, worker: _Worker) -> None:
        with self._lock:
            if not self._closed:
                self._idle.setdefault(worker.spec.name, []).append(worker)
                return
        worker.stop()

    def start_spares(self) -> None:
        """Start each function's spare workers ahead of traffic; their handlers import in the background
        (this returns once the processes are spawned), so the first event does not wait for a cold start."""
        for spec in self._functions.values():
            with self._lock:
                missing = self._spare_workers - len(self._idle.get(spec.name, []))
            for _ in range(missing):
                self._give_back(self._start_worker(spec))

    def close(self) -> None:
        with self._lock:
            self._closed = True
            workers = [worker for idle in self._idle.values() for worker in idle]
            self._idle.clear()
        for worker in workers:
            worker.stop()


if __name__ == "__main__":
    # python -m modeldrop_local.functions_host REPLY_FD SPEC_JSON: one function worker (see _Worker).
    # Ctrl-C reaches the whole process group: the host, not each worker, decides when workers stop.
    import signal

    signal.signal(signal.SIGINT, signal.SIG_IGN)
    with os.fdopen(int(sys.argv[1]), "w") as _replies:
        _worker_main(sys.stdin, _replies, json.loads(sys.argv[2]))
