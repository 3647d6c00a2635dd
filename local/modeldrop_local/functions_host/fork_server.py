"""The functions' fork server: one process per functions host with the common libraries imported, from
which each worker is forked, so a cold start imports only the function's own code.

`ForkServer` is the host's side (started on first use, or ahead by the caller); `serve_forks` runs in
the server process (`python -m modeldrop_local.functions_host --fork-server CONTROL_FD`).
"""

from __future__ import annotations

import contextlib
import importlib
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import traceback
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from modeldrop_local.functions_host.runtime import serve_invocations

# The directory modeldrop_local is imported from (local/ in a checkout).
_PACKAGE_PARENT = Path(__file__).resolve().parents[2]

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
RUNTIME_ENVIRONMENT = {
    "AWS_EXECUTION_ENV": "AWS_Lambda_python3.11",
    "LAMBDA_TASK_ROOT": str(_PACKAGE_PARENT),
    "POWERTOOLS_TRACE_DISABLED": "true",
}


def child_pythonpath() -> str:
    """PYTHONPATH for the fork server or a spawned worker: modeldrop_local must import in the child,
    installed or not (pytest's pythonpath)."""
    return os.pathsep.join(filter(None, [str(_PACKAGE_PARENT), os.environ.get("PYTHONPATH", "")]))


def serve_forks(control: socket.socket) -> None:
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
    (its log), the function's environment, then serve like a spawned worker (`serve_invocations`)."""
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
        serve_invocations(sys.stdin, replies, spec)
    sys.stdout.flush()
    sys.stderr.flush()


class ForkServer:
    """The host's side of the fork server: one process per functions host, started on first use."""

    def __init__(self, environment: Mapping[str, str]) -> None:
        host_end, server_end = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        child_environment = dict(os.environ)
        child_environment.update(environment)
        child_environment.update(RUNTIME_ENVIRONMENT)
        child_environment["PYTHONPATH"] = child_pythonpath()
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
