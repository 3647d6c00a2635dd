"""`modeldrop rollback`: ask the stack's REST API for a rollback, then follow that deployment.

The request goes through POST /models/{name}/rollback (with the stack's API key), as any client's
would; the deployment it answers with is followed in the DeploymentsTable until a final status.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from typing import Any

import httpx

from modeldrop_local.cli import FINAL_STATUSES


class RollbackRefused(Exception):
    """The API refused the rollback; the message is its own (e.g. which versions are kept)."""


def post_rollback(stack: Any, model_name: str, version: int | None, timeout_s: float = 30) -> dict[str, Any]:
    """POST the rollback; returns the rollback deployment (DeploymentSummary) the API answered."""
    headers = {"Content-Type": "application/json", "Accept": "application/json"}
    key = stack.api_key()
    if key:
        headers["x-api-key"] = key
    url = f"{stack.outputs()['ApiUrl'].rstrip('/')}/models/{model_name}/rollback"
    body = json.dumps({} if version is None else {"version": version}).encode()
    response = httpx.post(url, content=body, headers=headers, timeout=timeout_s)
    try:
        answer: dict[str, Any] = response.json()
    except ValueError:
        answer = {"error": "UnexpectedResponse", "message": response.text}
    if response.status_code != 202:
        raise RollbackRefused(f"{answer.get('error')}: {answer.get('message')}")
    return answer


def follow_version(
    stack: Any,
    model_name: str,
    version: int,
    *,
    timeout_s: float = 600,
    progress: Callable[[str], None] = print,
    poll_s: float = 0.5,
) -> Any:
    """Poll one deployment (by version) until a final status; returns its record."""
    records = stack.records()
    deadline = time.monotonic() + timeout_s
    last = None
    while time.monotonic() < deadline:
        deployment = records.get_deployment(model_name, version)
        if deployment is not None:
            line = f"v{deployment.version} {deployment.status}" + (
                f": {deployment.reason}" if deployment.reason else ""
            )
            if line != last:
                progress(line)
                last = line
            if str(deployment.status) in FINAL_STATUSES:
                return deployment
        time.sleep(poll_s)
    raise TimeoutError(f"rollback v{version} of {model_name} not final after {timeout_s:.0f} s")
