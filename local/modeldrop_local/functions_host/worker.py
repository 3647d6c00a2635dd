"""A function's worker process, seen from the host: forked (else spawned), one invocation at a time.

A worker is a Python process with the function's environment, its layers and CodeUri on sys.path, and
its handler imported once (the cold start); then it answers invocations over a pipe (runtime.py).
It is forked from the fork server (fork_server.py), or spawned as a fresh interpreter when there is
none. An invocation that outlives the function's Timeout is answered "timeout"; the host then kills
the worker (the next one starts cold), exactly like Lambda's sandbox reset.
"""

from __future__ import annotations

import contextlib
import json
import os
import select
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from modeldrop_local.functions_host.console import LogDestination, copy_to_console, pump_log
from modeldrop_local.functions_host.fork_server import (
    RUNTIME_ENVIRONMENT,
    FunctionsForkServer,
    child_pythonpath,
)

if TYPE_CHECKING:
    from modeldrop_local.functions_host.emf import EmfSink
    from modeldrop_local.template import FunctionSpec

INIT_TIMEOUT_S = 10.0


class FunctionWorker:
    """The host's side of one function worker: a process forked from the fork server (else spawned),
    its request and reply pipes, its log; one invocation at a time."""

    def __init__(
        self,
        spec: FunctionSpec,
        base_environment: Mapping[str, str],
        log_dir: Path | None,
        condensed_console: bool = False,
        fork_server: FunctionsForkServer | None = None,
        metrics_sink: EmfSink | None = None,
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
                **RUNTIME_ENVIRONMENT,
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
        child_environment["PYTHONPATH"] = child_pythonpath()
        # Like CloudWatch Logs: one log file per function when a log dir is given, else this console
        # (as written, or condensed to one readable line per record).
        # With a metrics sink, the log passes through this process first, as through CloudWatch Logs:
        # its EMF records become metrics (emf.py), then each line goes where it would have gone.
        log_fds: list[int] = []
        console_read = None
        log_file_fd = None
        if log_dir is not None:
            log_dir.mkdir(parents=True, exist_ok=True)
            log_file_fd = os.open(log_dir / f"{spec.name}.log", os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        if metrics_sink is not None or (log_file_fd is None and condensed_console):
            console_read, console_write = os.pipe()
            log_fds.append(console_write)
        elif log_file_fd is not None:
            log_fds.append(log_file_fd)
        child_fds = [requests_read, reply_write, *log_fds]
        try:
            if fork_server is None:
                raise ConnectionResetError("no fork server")
            self.pid = fork_server.fork_worker(child_environment, worker_spec, child_fds)
        except OSError:
            # No fork server (or it died): a fresh interpreter, which imports everything itself.
            self.pid = self._spawn(child_environment, worker_spec, child_fds)
        finally:
            for fd in child_fds:
                os.close(fd)
        if console_read is not None:
            if metrics_sink is None:
                target: Any = copy_to_console
                args: tuple[Any, ...] = (spec.logical_id, os.fdopen(console_read, "r"))
            else:
                destination = LogDestination(spec.logical_id, log_file_fd, condensed_console)
                target, args = pump_log, (os.fdopen(console_read, "r"), metrics_sink, destination)
            threading.Thread(target=target, args=args, daemon=True, name=f"log-{spec.logical_id}").start()
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
        # Reaped in the background, as the fork server reaps its workers: only its pid is kept.
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
