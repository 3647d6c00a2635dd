"""ForkServer: the host's handle on one fork server process (server.py has the wire). Thread-safe.

A reader thread takes the server's messages as they come (ready, forked, a worker's exit), so a fork
waits only for its own answer and a host can ask at any time whether a worker has exited, and how,
without racing the server for the wait status (the server is the workers' parent and reaps them).
"""

from __future__ import annotations

import contextlib
import json
import socket
import subprocess
import sys
import threading
from collections.abc import Iterable, Mapping
from typing import IO, Any

from modeldrop_local.forking.server import MAX_MESSAGE

READY_TIMEOUT_S = 120.0


class ForkServerError(ConnectionError):
    """The fork server is gone, or did not answer in time."""


class ForkServer:
    """Starts a fork server process (`python -m modeldrop_local.forking`) and forks workers from it."""

    def __init__(
        self,
        label: str,
        worker: str,
        *,
        environment: Mapping[str, str],
        python: str = sys.executable,
        preload: Iterable[str] = (),
        warm_up: str | None = None,
        bare_packages: Iterable[str] = (),
        isolate_workers: bool = False,
        stdout: int | IO[Any] | None = None,
    ) -> None:
        """label: what it serves, in its command line and errors. worker: the MODULE:FUNCTION each
        worker runs, called with the fork's payload and descriptors. environment: the server's whole
        environment (workers inherit it; modeldrop_local must import from its PYTHONPATH). See
        server.py for preload, warm_up, bare_packages and isolate_workers."""
        self.label = label
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        command = [python, "-m", "modeldrop_local.forking", "--fork-server", label]
        command += ["--control-fd", str(theirs.fileno()), "--worker", worker]
        command += [f"--preload={module}" for module in preload]
        command += [f"--bare-package={package}" for package in bare_packages]
        command += [f"--warm-up={warm_up}"] if warm_up else []
        command += ["--isolate-workers"] if isolate_workers else []
        self.process = subprocess.Popen(
            command,
            pass_fds=[theirs.fileno()],
            stdin=subprocess.DEVNULL,
            stdout=stdout,
            env=dict(environment),
        )
        theirs.close()
        self._sock = ours
        self._lock = threading.Lock()
        self._changed = threading.Condition()
        self._replies: dict[int, dict[str, Any]] = {}
        self._exits: dict[int, int] = {}
        self._seq = 0
        self._closed = False
        self.ready: dict[str, Any] | None = None  # the server's ready message: loaded, failed, threads
        self._reader = threading.Thread(target=self._read, name=f"fork-server-{label}", daemon=True)
        self._reader.start()

    def _read(self) -> None:
        while True:
            try:
                message = self._sock.recv(MAX_MESSAGE)
            except OSError:
                message = b""
            with self._changed:
                if not message:
                    self._closed = True
                    self._changed.notify_all()
                    return
                event = json.loads(message)
                if event["type"] == "exit":
                    self._exits[event["pid"]] = event["status"]
                elif event["type"] == "ready":
                    self.ready = event
                else:
                    self._replies[event["seq"]] = event
                self._changed.notify_all()

    def wait_ready(self, timeout_s: float = READY_TIMEOUT_S) -> None:
        """Wait until the server has imported its libraries; ForkServerError if it does not."""
        with self._changed:
            if not self._changed.wait_for(lambda: self.ready is not None or self._closed, timeout_s):
                raise ForkServerError(f"the {self.label} fork server did not start within {timeout_s} s")
            if self.ready is None:
                raise ForkServerError(f"the {self.label} fork server exited while importing its libraries")

    def alive(self) -> bool:
        return not self._closed and self.process.poll() is None

    def fork(self, payload: Any, fds: list[int], timeout_s: float | None = 30.0) -> int:
        """A new worker's pid. The descriptors are the worker's (the caller closes its copies); a fork
        asked while the server still imports waits for it (timeout_s counts from the request; None
        waits as long as the server lives). ForkServerError if the server is gone or does not answer."""
        with self._lock:
            self._seq += 1
            seq = self._seq
            message = json.dumps({"type": "fork", "seq": seq, "payload": payload}).encode()
            try:
                socket.send_fds(self._sock, [message], fds)
            except OSError as error:
                raise ForkServerError(f"the {self.label} fork server exited") from error
        with self._changed:
            if not self._changed.wait_for(lambda: seq in self._replies or self._closed, timeout_s):
                raise ForkServerError(f"the {self.label} fork server did not fork within {timeout_s} s")
            if seq not in self._replies:
                raise ForkServerError(f"the {self.label} fork server exited")
            return int(self._replies.pop(seq)["pid"])

    def exit_status(self, pid: int, timeout_s: float = 0.0) -> int | None:
        """The wait status of a worker once it exited (waiting up to timeout_s), else None."""
        with self._changed:
            self._changed.wait_for(lambda: pid in self._exits or self._closed, timeout_s)
            return self._exits.get(pid)

    def has_exited(self, pid: int) -> bool:
        """Whether a worker has exited (or can no longer be told apart: the server is gone)."""
        with self._changed:
            return pid in self._exits or self._closed

    def close(self, timeout_s: float = 5.0) -> None:
        """Stop the server (it sees its control socket close) and wait for it, killing it if it lingers."""
        with contextlib.suppress(OSError):  # already shut down by the other end
            self._sock.shutdown(socket.SHUT_RDWR)
        self._sock.close()
        try:
            self.process.wait(timeout_s)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
