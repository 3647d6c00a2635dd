"""What every benchmark shares: machine facts, a loopback HTTP load generator, result files.

Each benchmark compares against a baseline measured in the same run, so the ratios mean something on a
shared, noisy machine where absolute times alone do not.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import platform
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager, suppress
from dataclasses import asdict, dataclass, field
from importlib import metadata
from pathlib import Path
from typing import Any

JSON_HEADERS = {"Content-Type": "application/json", "Accept": "application/json"}
BENCH_DIR = Path(__file__).resolve().parent
RESULTS_DIR = BENCH_DIR / "results"
REPO_ROOT = BENCH_DIR.parent


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_for_port(port: int, timeout_s: float = 60.0, process: subprocess.Popen[Any] | None = None) -> None:
    """Block until something accepts on 127.0.0.1:port (servers started as subprocesses give no event)."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if process is not None and process.poll() is not None:
            raise RuntimeError(f"server process exited with {process.returncode} before listening on {port}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.05)
    raise TimeoutError(f"nothing listens on 127.0.0.1:{port} after {timeout_s}s")


def _version_in_mlflow_venv(package: str) -> str:
    """MLflow runs from a venv of its own (see the Makefile); ask that interpreter."""
    python = REPO_ROOT / ".venv-mlflow" / "bin" / "python"
    if not python.exists():
        return "not installed"
    probe = subprocess.run(
        [str(python), "-c", f"from importlib.metadata import version; print(version({package!r}))"],
        capture_output=True,
        text=True,
    )
    return probe.stdout.strip() if probe.returncode == 0 else "not installed"


def machine_info() -> dict[str, Any]:
    versions = {}
    for package in (
        "boto3",
        "moto",
        "scikit-learn",
        "onnxruntime",
        "xgboost",
        "fastapi",
        "uvicorn",
        "mlflow",
    ):
        try:
            versions[package] = metadata.version(package)
        except metadata.PackageNotFoundError:
            versions[package] = _version_in_mlflow_venv(package)
    return {
        "python": sys.version.split()[0],
        "platform": platform.platform(),
        "cpus": os.cpu_count(),
        "memory_gib": round(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30, 1),
        "versions": versions,
        "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        # The machine is shared: how busy it was (1-minute load average over its cpus) when measured.
        "load_average_1m": round(os.getloadavg()[0], 1),
    }


def percentile(values: Sequence[float], pct: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(pct / 100 * (len(ordered) - 1))))
    return ordered[index]


class NoDelayHTTPConnection(http.client.HTTPConnection):
    """http.client writes headers and body in two sends; without TCP_NODELAY, Nagle's algorithm and the
    server's delayed ACK add ~40 ms to every request, which would measure the kernel, not the servers."""

    def connect(self) -> None:
        super().connect()
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)


@dataclass
class LoadResult:
    """Latencies (ms) of the requests that succeeded, plus counts, for one target at one concurrency."""

    target: str
    concurrency: int
    latencies_ms: list[float] = field(default_factory=list)
    errors: int = 0
    wall_s: float = 0.0

    @property
    def rps(self) -> float:
        return len(self.latencies_ms) / self.wall_s if self.wall_s else 0.0

    def summary(self) -> dict[str, Any]:
        return {
            "target": self.target,
            "concurrency": self.concurrency,
            "requests": len(self.latencies_ms),
            "errors": self.errors,
            "p50_ms": round(percentile(self.latencies_ms, 50), 3),
            "p95_ms": round(percentile(self.latencies_ms, 95), 3),
            "p99_ms": round(percentile(self.latencies_ms, 99), 3),
            "rps": round(self.rps, 1),
        }


def http_load(
    target: str,
    port: int,
    path: str,
    body: bytes,
    headers: dict[str, str],
    concurrency: int,
    requests_per_client: int,
    warmup_per_client: int = 5,
    ok: Callable[[int, bytes], bool] = lambda status, _body: status == 200,
) -> LoadResult:
    """The one HTTP client every server is measured with: keep-alive http.client, N threads, fixed count."""
    result = LoadResult(target=target, concurrency=concurrency)
    lock = threading.Lock()
    start_barrier = threading.Barrier(concurrency + 1)

    def client() -> None:
        conn = NoDelayHTTPConnection("127.0.0.1", port, timeout=120)
        local: list[float] = []
        errors = 0
        for i in range(warmup_per_client + requests_per_client):
            if i == warmup_per_client:
                start_barrier.wait()
            t0 = time.perf_counter()
            try:
                conn.request("POST", path, body=body, headers=headers)
                response = conn.getresponse()
                payload = response.read()
                good = ok(response.status, payload)
            except (OSError, http.client.HTTPException):
                conn.close()
                conn = NoDelayHTTPConnection("127.0.0.1", port, timeout=120)
                good = False
            elapsed = (time.perf_counter() - t0) * 1000
            if i >= warmup_per_client:
                if good:
                    local.append(elapsed)
                else:
                    errors += 1
        conn.close()
        with lock:
            result.latencies_ms.extend(local)
            result.errors += errors

    threads = [threading.Thread(target=client, daemon=True) for _ in range(concurrency)]
    for thread in threads:
        thread.start()
    start_barrier.wait()
    t0 = time.perf_counter()
    for thread in threads:
        thread.join()
    result.wall_s = time.perf_counter() - t0
    return result


# http_load in a child process: the client must not share the GIL of a server that runs in this process.
_CHILD_LOAD = """
import json, sys
from benchmarks.common import http_load
target, port, path, body, headers, concurrency, requests = sys.argv[1:8]
result = http_load(target, int(port), path, body.encode("latin-1"), json.loads(headers), int(concurrency),
                   int(requests))
print(json.dumps({"latencies_ms": result.latencies_ms, "errors": result.errors, "wall_s": result.wall_s}))
"""


def http_load_in_child(
    target: str,
    port: int,
    path: str,
    body: bytes,
    headers: dict[str, str],
    concurrency: int,
    requests_per_client: int,
) -> LoadResult:
    """http_load, driven from a fresh Python process (same client, same counts)."""
    arguments = [target, str(port), path, body.decode("latin-1"), json.dumps(headers)]
    done = subprocess.run(
        [sys.executable, "-c", _CHILD_LOAD, *arguments, str(concurrency), str(requests_per_client)],
        cwd=REPO_ROOT,
        capture_output=True,
        check=True,
        text=True,
    )
    answer = json.loads(done.stdout)
    return LoadResult(target, concurrency, answer["latencies_ms"], answer["errors"], answer["wall_s"])


@contextmanager
def subprocess_server(
    args: Sequence[str],
    port: int,
    env: dict[str, str] | None = None,
    timeout_s: float = 120.0,
    log_name: str = "server",
) -> Iterator[subprocess.Popen[Any]]:
    """Start a server process, wait until it listens, and always stop it (and its children)."""
    RESULTS_DIR.mkdir(parents=True, exist_ok=True)
    log_dir = RESULTS_DIR / "logs"
    log_dir.mkdir(parents=True, exist_ok=True)
    log = (log_dir / f"{log_name}.log").open("wb")
    process = subprocess.Popen(
        list(args),
        env={**os.environ, **(env or {})},
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    try:
        wait_for_port(port, timeout_s, process)
        yield process
    finally:
        try:
            os.killpg(process.pid, signal.SIGTERM)
            process.wait(timeout=15)
        except (ProcessLookupError, subprocess.TimeoutExpired):
            with suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)
            process.wait()
        log.close()


def write_result(name: str, data: dict[str, Any]) -> Path:
    """Each benchmark writes benchmarks/results/<name>.json; run_all renders them into RESULTS.md."""
    RESULTS_DIR.mkdir(parents=True, exist_ok=True)
    path = RESULTS_DIR / f"{name}.json"
    payload = {"machine": machine_info(), **data}
    path.write_text(
        json.dumps(
            payload, indent=2, default=lambda o: asdict(o) if hasattr(o, "__dataclass_fields__") else str(o)
        )
    )
    return path


def command_line(
    run: Callable[[int], dict[str, Any]],
    description: str | None,
    option: str,
    default: int,
    help: str | None = None,
) -> None:
    """A benchmark run alone: its one whole-number option (e.g. --samples), then run(it)'s result as JSON."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument(option, type=int, default=default, help=help)
    value = getattr(parser.parse_args(), option.lstrip("-").replace("-", "_"))
    print(json.dumps(run(value), indent=2))


def profile_command_line(
    run: Callable[[int, int, int], str], description: str | None, requests: int, top: int
) -> None:
    """A profile run alone: --requests per client per pass, --concurrency, --top; prints run's report."""
    parser = argparse.ArgumentParser(
        description=description, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--requests", type=int, default=requests, help="requests per client per pass")
    parser.add_argument("--concurrency", type=int, default=1)
    parser.add_argument("--top", type=int, default=top, help="functions listed from the profile")
    options = parser.parse_args()
    print(run(options.requests, options.concurrency, options.top))
