"""Run the template's functions the way Lambda does: warm worker processes, one request at a time each.

A worker is a Python process with the function's environment, its layers and CodeUri on sys.path,
and its handler imported once (the cold start); then it answers invocations over a pipe with a
Lambda-shaped context. Workers are forked from one fork server per host that has the common libraries
(boto3, Powertools, pydantic) imported already, so a cold start imports only the function's own code.
An invocation that outlives the function's Timeout kills the worker (the next one starts cold),
exactly like Lambda's sandbox reset. Errors come back in Lambda's shape.
"""

from __future__ import annotations

import contextlib
import importlib
import json
import os
import select
import signal
import socket
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


# Libraries every function of the template imports: the fork server imports them once, so a new worker
# is a fork with them loaded (milliseconds) instead of a fresh interpreter importing them again (~0.3 s
# of CPU each on a quiet machine, 1-2 s when several workers start at once on 2 cores; aws_xray_sdk and
# boto3 are most of it). Only third-party libraries, which read no function setting when imported; the
# function's own code and its layers (Powertools objects built from the function's environment) are
# imported in the worker, after its environment is set, as before.
PRELOADED_MODULES = (
    "boto3",
    "boto3.dynamodb.conditions",
    "boto3.s3.transfer",
    "botocore.client",
    "pydantic",
    "aws_xray_sdk.core",
    "aws_lambda_powertools",
    "aws_lambda_powertools.event_handler",
    "aws_lambda_powertools.utilities.idempotency",
    "aws_lambda_powertools.utilities.parser",
    "aws_lambda_powertools.utilities.parser.models",
    "aws_lambda_powertools.utilities.typing",
)
# AWS services whose API descriptions the fork server loads into boto3's default session (the one
# `boto3.client(...)` uses): the services the edge serves. A worker's first client then skips reading
# and parsing those JSON files (~0.4 s of CPU for an OnUpload worker). Only the descriptions are
# loaded: region, credentials and endpoint are resolved when the function creates its clients, from
# its own environment, as before.
PRELOADED_SERVICE_MODELS = (
    "s3",
    "dynamodb",
    "stepfunctions",
    "sagemaker",
    "sagemaker-runtime",
    "service-quotas",
    "lambda",
    "logs",
)
# Lambda's runtime variables that are the same for every function; the fork server imports with them
# set (aws_xray_sdk's recorder checks LAMBDA_TASK_ROOT when imported), each worker then sets its own.
_RUNTIME_ENVIRONMENT = {
    "AWS_EXECUTION_ENV": "AWS_Lambda_python3.11",
    "LAMBDA_TASK_ROOT": str(_PACKAGE_PARENT),
    "POWERTOOLS_TRACE_DISABLED": "true",
}


def _fork_server_main(control: socket.socket) -> None:
    """Fork server process: import PRELOADED_MODULES, then fork one worker per request until the host
    closes the control socket. A request is the worker's environment and spec (JSON) with its pipes'
    descriptors (SCM_RIGHTS); the answer is the worker's pid."""
    for module in PRELOADED_MODULES:
        with contextlib.suppress(ImportError):
            importlib.import_module(module)
    _load_service_models()
    # The kernel reaps the workers; the host watches each through its reply pipe and its pid.
    signal.signal(signal.SIGCHLD, signal.SIG_IGN)
    while True:
        try:
            message, fds, _, _ = socket.recv_fds(control, 1 << 20, 3)
        except ConnectionResetError:
            return
        if not message:
            return
        request = json.loads(message)
        sys.stdout.flush()
        sys.stderr.flush()
        pid = os.fork()
        if pid == 0:  # the worker
            status = 0
            try:
                control.close()
                _become_worker(fds, request["environment"], request["spec"])
            except BaseException:
                traceback.print_exc()
                status = 1
            finally:
                os._exit(status)
        for fd in fds:
            os.close(fd)
        control.sendall(json.dumps({"pid": pid}).encode())


def _load_service_models() -> None:
    try:
        import boto3
    except ImportError:
        return
    boto3.setup_default_session()
    assert boto3.DEFAULT_SESSION is not None
    botocore_session = boto3.DEFAULT_SESSION._session
    loader = botocore_session.get_component("data_loader")
    botocore_session.get_component("endpoint_resolver")
    for service in PRELOADED_SERVICE_MODELS:
        # A warm-up only: a service this botocore does not know is left to load (and fail) on use.
        with contextlib.suppress(Exception):
            botocore_session.get_service_model(service)
            loader.load_service_model(service, "endpoint-rule-set-1")
            if service in boto3.DEFAULT_SESSION.get_available_resources():
                loader.load_service_model(service, "resources-1")


def _become_worker(fds: list[int], environment: dict[str, str], spec: dict[str, Any]) -> None:
    """In a forked worker: take the host's pipes as stdin (requests), the reply pipe and stdout/stderr
    (its log), the function's environment, then serve like a spawned worker (`_worker_main`)."""
    signal.signal(signal.SIGCHLD, signal.SIG_DFL)  # the function's own subprocesses are its to wait for
    requests_fd, replies_fd, *log_fd = fds
    os.dup2(requests_fd, 0)
    os.close(requests_fd)
    if log_fd:
        os.dup2(log_fd[0], 1)
        os.dup2(log_fd[0], 2)
        os.close(log_fd[0])
    os.environ.clear()
    os.environ.update(environment)
    with os.fdopen(replies_fd, "w") as replies:
        _worker_main(sys.stdin, replies, spec)
    sys.stdout.flush()
    sys.stderr.flush()


class ForkServer:
    """The host's side of the fork server: one process per functions host, started on first use."""

    def __init__(self, environment: Mapping[str, str]) -> None:
        host_end, server_end = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        child_environment = dict(os.environ)
        child_environment.update(environment)
        child_environment.update(_RUNTIME_ENVIRONMENT)
        child_environment["PYTHONPATH"] = os.pathsep.join(
            filter(None, [str(_PACKAGE_PARENT), os.environ.get("PYTHONPATH", "")])
        )
        self.process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "modeldrop_local.functions_host",
                "--fork-server",
                str(server_end.fileno()),
            ],
            stdin=subprocess.DEVNULL,
            pass_fds=(server_end.fileno(),),
            env=child_environment,
        )
        server_end.close()
        self._socket = host_end
        self._lock = threading.Lock()

    def fork(self, environment: Mapping[str, str], spec: Mapping[str, Any], fds: list[int]) -> int:
        """A new worker's pid; waits while the server is still importing. Raises OSError if it is gone."""
        message = json.dumps({"environment": dict(environment), "spec": dict(spec)}).encode()
        with self._lock:
            socket.send_fds(self._socket, [message], fds)
            reply = self._socket.recv(4096)
        if not reply:
            raise ConnectionResetError("the functions' fork server exited")
        return int(json.loads(reply)["pid"])

    def alive(self) -> bool:
        return self.process.poll() is None

    def close(self) -> None:
        self._socket.close()
        try:
            self.process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(timeout=5)


class _Worker:
    def __init__(
        self,
        spec: FunctionSpec,
        base_environment: Mapping[str, str],
        log_dir: Path | None,
        condensed_console: bool = False,
        fork_server: ForkServer | None = None,
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
                **_RUNTIME_ENVIRONMENT,
                "LAMBDA_TASK_ROOT": str(spec.code_dir),
            }
        )
        worker_spec = {
            "name": spec.name,
            "arn": spec.arn,
            "memory_mb": spec.memory_mb,
            "handler": spec.handler,
            "code_dir": str(spec.code_dir),
            "layer_dirs": [str(path) for path in spec.layer_dirs],
            "environment": environment,
        }
        # Requests and replies travel on their own pipes: the function's prints and logs keep
        # stdout/stderr, as on Lambda.
        requests_read, requests_write = os.pipe()
        reply_read, reply_write = os.pipe()
        child_environment = dict(os.environ)
        child_environment.update(environment)
        # The worker module itself must import in the child, installed or not (pytest's pythonpath).
        child_environment["PYTHONPATH"] = os.pathsep.join(
            filter(None, [str(_PACKAGE_PARENT), os.environ.get("PYTHONPATH", "")])
        )
        # Like CloudWatch Logs: one log file per function when a log dir is given, else this console
        # (as written, or condensed to one readable line per record).
        log_fds: list[int] = []
        console_read = None
        if log_dir is not None:
            log_dir.mkdir(parents=True, exist_ok=True)
            log_fds.append(
                os.open(log_dir / f"{spec.name}.log", os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
            )
        elif condensed_console:
            console_read, console_write = os.pipe()
            log_fds.append(console_write)
        child_fds = [requests_read, reply_write, *log_fds]
        try:
            if fork_server is None:
                raise ConnectionResetError("no fork server")
            self.pid = fork_server.fork(child_environment, worker_spec, child_fds)
        except OSError:
            # No fork server (or it died): a fresh interpreter, which imports everything itself.
            self.pid = self._spawn(child_environment, worker_spec, child_fds)
        finally:
            for fd in child_fds:
                os.close(fd)
        if console_read is not None:
            threading.Thread(
                target=_copy_to_console,
                args=(spec.logical_id, os.fdopen(console_read, "r")),
                daemon=True,
                name=f"console-{spec.logical_id}",
            ).start()
        self._requests = os.fdopen(requests_write, "w")
        self._replies = os.fdopen(reply_read, "r")
        self._ready = False
        self._init_reply: tuple[str, bytes] | None = None  # an init error read by await_init
        self._init_deadline = time.time() + max(INIT_TIMEOUT_S, spec.timeout_s)

    def await_init(self, deadline: float) -> None:
        """Wait (until deadline at most) for the handler's import to end; the next invoke answers an
        import failure as it would have without this wait."""
        if self._ready or self._init_reply is not None:
            return
        kind, body = self._receive(min(deadline, self._init_deadline))
        if kind == "ready":
            self._ready = True
        elif kind != "timeout":
            self._init_reply = (kind, body)

    @staticmethod
    def _spawn(environment: Mapping[str, str], spec: Mapping[str, Any], fds: list[int]) -> int:
        requests_fd, reply_fd, *log_fd = fds
        process = subprocess.Popen(
            [sys.executable, "-m", "modeldrop_local.functions_host", str(reply_fd), json.dumps(spec)],
            stdin=requests_fd,
            stdout=log_fd[0] if log_fd else None,
            stderr=subprocess.STDOUT if log_fd else None,
            pass_fds=(reply_fd,),
            env=dict(environment),
        )
        # Reaped in the background, as the fork server's workers are by the kernel: only its pid is kept.
        threading.Thread(target=process.wait, daemon=True, name=f"reap-{process.pid}").start()
        return process.pid

    def invoke(self, payload: bytes, request_id: str) -> tuple[str, bytes]:
        if not self._ready:
            # Lambda's init phase (imports) has its own limit, 10 s, before the handler's timeout starts.
            kind, body = self._init_reply or self._receive(self._init_deadline)
            if kind != "ready":
                return kind, body
            self._ready = True
        deadline = time.time() + self.spec.timeout_s
        request = {"id": request_id, "payload": payload.decode("utf-8", "replace"), "deadline": deadline}
        try:
            self._requests.write(json.dumps(request) + "\n")
            self._requests.flush()
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
        # An idle worker only ends by dying; its end of the reply pipe then reads as closed.
        readable, _, _ = select.select([self._replies], [], [], 0)
        if readable and not self._ready and self._init_reply is None:
            return True  # its "ready" line (or its init error) waits there
        if readable:
            return False
        try:
            os.kill(self.pid, 0)
        except ProcessLookupError:
            return False
        return True

    def stop(self) -> None:
        with contextlib.suppress(BrokenPipeError):
            self._requests.close()
        # Its stdin closed, the worker returns and exits: its reply pipe closes (EOF) when it is gone.
        deadline = time.time() + 2
        while True:
            readable, _, _ = select.select([self._replies], [], [], max(0.0, deadline - time.time()))
            if not readable:
                self._signal(signal.SIGKILL)
                break
            if not self._replies.readline():
                break
        self._replies.close()

    def kill(self) -> None:
        self._signal(signal.SIGKILL)
        with contextlib.suppress(BrokenPipeError):
            self._requests.close()
        self._replies.close()

    def _signal(self, number: int) -> None:
        with contextlib.suppress(ProcessLookupError):
            os.kill(self.pid, number)


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
        fork_server: ForkServer | None = None,
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
        # Started by the caller ahead of time (its imports overlap the caller's own start), else on first use.
        self._fork_server: ForkServer | None = fork_server
        self._fork_server_lock = threading.Lock()
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
        return _Worker(
            spec, self._base_environment, self.log_dir, self.condensed_console, self._running_fork_server()
        )

    def _running_fork_server(self) -> ForkServer | None:
        with self._fork_server_lock:
            if self._closed:
                return None
            if self._fork_server is None or not self._fork_server.alive():
                self._fork_server = ForkServer(self._base_environment)
            return self._fork_server

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

    def await_spares(self, timeout_s: float = INIT_TIMEOUT_S) -> None:
        """Wait until the spare workers have imported their handlers (or timeout_s has passed), so the
        first events after start find them warm, as with Lambda's provisioned concurrency."""
        deadline = time.time() + timeout_s
        with self._lock:
            spares = [worker for idle in self._idle.values() for worker in idle]
        for worker in spares:
            worker.await_init(deadline)

    def close(self) -> None:
        with self._lock:
            self._closed = True
            workers = [worker for idle in self._idle.values() for worker in idle]
            self._idle.clear()
        for worker in workers:
            worker.stop()
        with self._fork_server_lock:
            fork_server, self._fork_server = self._fork_server, None
        if fork_server is not None:
            fork_server.close()


if __name__ == "__main__":
    # python -m modeldrop_local.functions_host --fork-server CONTROL_FD: the workers' fork server;
    # python -m modeldrop_local.functions_host REPLY_FD SPEC_JSON: one function worker (see _Worker).
    # Ctrl-C reaches the whole process group: the host, not each worker, decides when workers stop.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    if sys.argv[1] == "--fork-server":
        _fork_server_main(socket.socket(fileno=int(sys.argv[2])))
    else:
        with os.fdopen(int(sys.argv[1]), "w") as _replies:
            _worker_main(sys.stdin, _replies, json.loads(sys.argv[2]))
