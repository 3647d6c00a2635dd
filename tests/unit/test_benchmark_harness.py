"""The benchmark harness measures what it claims: counts, errors and percentiles of real HTTP calls."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from benchmarks.common import http_load, percentile
from benchmarks.run_all import markdown_table


class _EveryThirdFails(BaseHTTPRequestHandler):
    calls = 0
    lock = threading.Lock()

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers["Content-Length"]))
        with self.lock:
            type(self).calls += 1
            failing = type(self).calls % 3 == 0
        body = b"no" if failing else b"[0]"
        self.send_response(500 if failing else 200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *_: object) -> None:
        return


@pytest.fixture
def flaky_server() -> Iterator[int]:
    _EveryThirdFails.calls = 0
    server = ThreadingHTTPServer(("127.0.0.1", 0), _EveryThirdFails)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield int(server.server_address[1])
    server.shutdown()
    server.server_close()


@pytest.mark.allow_hosts(["127.0.0.1"])  # a real HTTP server on loopback
def test_http_load_counts_successes_and_errors_apart(flaky_server: int) -> None:
    # Given a loopback server that fails every third request
    # When two clients send 15 measured requests each after 3 warm-up requests
    result = http_load(
        "flaky", flaky_server, "/x", b"[]", {}, concurrency=2, requests_per_client=15, warmup_per_client=3
    )

    # Then every request was sent, and the failures are counted, not timed
    assert _EveryThirdFails.calls == 2 * (15 + 3)
    assert len(result.latencies_ms) + result.errors == 30
    assert 5 <= result.errors <= 15
    assert all(latency > 0 for latency in result.latencies_ms)
    summary = result.summary()
    assert summary["requests"] == len(result.latencies_ms) and summary["rps"] > 0


def test_percentile_picks_the_nearest_rank() -> None:
    values = [float(v) for v in range(1, 101)]
    assert percentile(values, 50) == 50.0 or percentile(values, 50) == 51.0
    assert percentile(values, 99) == 99.0
    assert percentile([7.0], 95) == 7.0


def test_markdown_table_keeps_column_order_and_blanks_none() -> None:
    table = markdown_table([{"a": 1, "b": None}, {"a": 2, "b": "x"}])
    assert table.splitlines() == ["| a | b |", "|---|---|", "| 1 |  |", "| 2 | x |"]
