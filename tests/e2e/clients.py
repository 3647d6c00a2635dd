"""What the e2e tests do to a stack as its users would: deploy a tarball and follow it, call the
model, and keep calling it on a thread of its own while something changes under it."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
from modeldrop.api.models import DeploymentSummary
from modeldrop_local.example_models import iris_sample
from modeldrop_local.stack_client import StackClient


def deploy(stack: StackClient, tarball: Path, name: str) -> DeploymentSummary:
    """Upload and follow to a final status (through the REST API, as `modeldrop deploy` does)."""
    return stack.follow(
        name, stack.upload(tarball, name), timeout_s=120, progress=lambda line: None, poll_s=0.2
    )


def predict(stack: StackClient, name: str) -> httpx.Response:
    return stack.invoke(name, json.dumps(iris_sample()).encode(), "application/json")


@contextmanager
def invoking_continuously(stack: StackClient, name: str) -> Iterator[list[tuple[int, Any]]]:
    """A client calling the model back to back until the block ends; yields its (status, answer) list."""
    answers: list[tuple[int, Any]] = []
    stop = threading.Event()

    def client() -> None:
        while not stop.is_set():
            response = predict(stack, name)
            answers.append(
                (response.status_code, response.json() if response.status_code == 200 else response.text)
            )

    thread = threading.Thread(target=client)
    thread.start()
    try:
        yield answers
    finally:
        stop.set()
        thread.join(timeout=30)


def assert_switched_without_a_failed_request(answers: list[tuple[int, Any]], old: Any, new: Any) -> None:
    """Every call answered 200, and both models' answers were seen (the client ran across the switch)."""
    assert old != new
    assert answers, "the client thread made no request"
    assert [status for status, _ in answers if status != 200] == []
    assert {json.dumps(body, sort_keys=True) for _, body in answers} == {
        json.dumps(old, sort_keys=True),
        json.dumps(new, sort_keys=True),
    }
