"""`modeldrop local up` as a child process (so it can be measured, signalled and restarted), the process
tree's memory from /proc, and a background client that keeps calling a live model."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from modeldrop_local.credentials import client_environment

from benchmarks.common import NoDelayHTTPConnection, free_port, percentile, wait_for_port

SERVICE_QUOTAS = "L-96300102=1000,L-99AD19BF=100"
CLOUD_PARAMETERS = {"PollIntervalSeconds": "1", "DeployTimeoutSeconds": "60"}
_PAGE_SIZE = os.sysconf("SC_PAGE_SIZE")


def process_tree(root: int) -> list[int]:
    """root and every descendant, from /proc (children by parent pid)."""
    parents: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            stat = Path(f"/proc/{entry}/stat").read_text()
        except OSError:
            continue
        # The command name may hold spaces and parentheses: the fields start after the last ')'.
        parent = int(stat.rsplit(")", 1)[1].split()[1])
        parents.setdefault(parent, []).append(int(entry))
    tree, todo = [], [root]
    while todo:
        pid = todo.pop()
        tree.append(pid)
        todo.extend(parents.get(pid, []))
    return tree


def rss_bytes(pid: int) -> int:
    try:
        return int(Path(f"/proc/{pid}/statm").read_text().split()[1]) * _PAGE_SIZE
    except (OSError, IndexError, ValueError):
        return 0  # the process ended between listing and reading


def tree_rss_bytes(root: int) -> int:
    return sum(rss_bytes(pid) for pid in process_tree(root))


def alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


class PeakRss:
    """Samples a process tree's summed RSS every interval until stopped; keeps the peak."""

    def __init__(self, root: int, interval_s: float = 0.1) -> None:
        self.root = root
        self.interval_s = interval_s
        self.baseline = tree_rss_bytes(root)
        self.peak = self.baseline
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True, name="peak-rss")

    def _sample(self) -> None:
        while not self._stop.wait(self.interval_s):
            self.peak = max(self.peak, tree_rss_bytes(self.root))

    def __enter__(self) -> PeakRss:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()


@dataclass
class CloudProcess:
    """One `modeldrop local up` on free ports; start() again after stop() restarts it on the same ports
    and state dir."""

    state_dir: Path
    log_path: Path
    edge_port: int = field(default_factory=free_port)
    api_port: int = field(default_factory=free_port)
    process: subprocess.Popen[bytes] | None = None

    @property
    def edge_url(self) -> str:
        return f"http://127.0.0.1:{self.edge_port}"

    @property
    def pid(self) -> int:
        assert self.process is not None
        return self.process.pid

    def environment(self) -> dict[str, str]:
        return {
            **client_environment(self.edge_url, "us-east-1"),
            # Two dozen endpoints at once, far above the account's default serverless quotas (5 endpoints,
            # 10 concurrency in total), whose preflight would reject the uploads before the case is tried.
            "MODELDROP_LOCAL_SERVICE_QUOTAS": SERVICE_QUOTAS,
        }

    def start(self, timeout_s: float = 120.0) -> None:
        arguments = [
            sys.executable,
            "-m",
            "modeldrop_local.cli",
            "local",
            "up",
            "--edge-port",
            str(self.edge_port),
            "--api-port",
            str(self.api_port),
            "--state-dir",
            str(self.state_dir),
        ]
        for key, value in CLOUD_PARAMETERS.items():
            arguments += ["-p", f"{key}={value}"]
        log = self.log_path.open("ab")
        self.process = subprocess.Popen(
            arguments,
            cwd=Path(__file__).resolve().parents[1],
            env={**os.environ, **self.environment()},
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        log.close()
        wait_for_port(self.edge_port, timeout_s, self.process)
        wait_for_port(self.api_port, timeout_s, self.process)

    def stop(self, timeout_s: float = 60.0) -> float:
        """SIGTERM (as a user's Ctrl-C or a service manager would); seconds until it exited. Whatever is
        still running after timeout_s is killed, and the stop counts as the timeout."""
        assert self.process is not None
        started = time.perf_counter()
        self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            for pid in process_tree(self.process.pid):
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
            self.process.wait()
        return time.perf_counter() - started


@dataclass
class Prober:
    """A client that keeps invoking one model through the REST API while other cases run."""

    port: int
    path: str
    headers: dict[str, str]
    body: bytes
    interval_s: float = 0.1
    answers: list[tuple[float, int, float]] = field(default_factory=list)  # (time, status, ms)
    failures: list[tuple[float, str]] = field(default_factory=list)
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    def _run(self) -> None:
        connection = NoDelayHTTPConnection("127.0.0.1", self.port, timeout=30)
        while not self._stop.wait(self.interval_s):
            started = time.perf_counter()
            try:
                connection.request("POST", self.path, body=self.body, headers=self.headers)
                response = connection.getresponse()
                payload = response.read()
            except OSError as error:
                self.failures.append((time.time(), f"{type(error).__name__}: {error}"))
                connection.close()
                connection = NoDelayHTTPConnection("127.0.0.1", self.port, timeout=30)
                continue
            elapsed_ms = (time.perf_counter() - started) * 1000
            self.answers.append((time.time(), response.status, elapsed_ms))
            if response.status != 200:
                self.failures.append((time.time(), f"{response.status}: {payload[:200]!r}"))
        connection.close()

    def start(self) -> Prober:
        self._thread = threading.Thread(target=self._run, daemon=True, name="prober")
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()

    def between(self, start: float, end: float) -> dict[str, Any]:
        """Requests and failures in a time window (wall clock)."""
        answered = [a for a in self.answers if start <= a[0] <= end]
        failed = [f for f in self.failures if start <= f[0] <= end]
        return {
            "requests": len(answered) + len([f for f in failed if not f[1][:3].isdigit()]),
            "failures": len(failed),
            "p99_ms": round(percentile([a[2] for a in answered], 99), 1) if answered else None,
        }
