"""The log pump: request markers and lines however the pipe splits them."""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest
from modeldrop_local.sagemaker.worker.child import marker
from modeldrop_local.sagemaker.worker.log_pump import LogPump

STREAM = (
    marker("model-load")
    + b"loading weights\n"
    + marker("-")
    + marker("req-1")
    + b"first line\nsecond "
    + b"line\npartial without newline"
    + marker("-")
    + marker("req-2")
    + "unicode \u00e9\n".encode()
    + b"tail without newline"
)


@pytest.mark.parametrize("chunk_size", [1, 3, 7, 64, len(STREAM)])
def test_lines_are_tagged_with_their_request_whatever_the_read_sizes(tmp_path: Path, chunk_size: int) -> None:
    # Given a pump on a real pipe
    read_fd, write_fd = os.pipe()
    log_path = tmp_path / "worker.log"
    pump = LogPump(read_fd, log_path, "4242")
    pump.start()

    # When the worker's output arrives in chunks of chunk_size bytes (markers split across writes)
    for start in range(0, len(STREAM), chunk_size):
        os.write(write_fd, STREAM[start : start + chunk_size])
    os.close(write_fd)
    pump.join(timeout=5)

    # Then each line is written once, with the request id that was current when it was printed
    lines = [re.sub(r"^\S+Z pid=4242 ", "", line) for line in log_path.read_text().splitlines()]
    assert lines == [
        "[model-load] loading weights",
        "[req-1] first line",
        "[req-1] second line",
        "[req-1] partial without newline",
        "[req-2] unicode \u00e9",
        "[req-2] tail without newline",
    ]
    assert not pump.is_alive()
