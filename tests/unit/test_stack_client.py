"""StackClient.follow: one follow for `deploy` and `rollback`, over GET /models/{name}."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from modeldrop.api.models import DeploymentSummary, ModelDetail
from modeldrop_local.stack_client import RestApiError, StackClient


def _detail(endpoint: str | None, *deployments: tuple[int, str, str]) -> ModelDetail:
    history = [
        DeploymentSummary(
            deployment_id=f"iris-v{version}", version=version, status=status, object_version=obj
        )
        for version, status, obj in deployments
    ]
    return ModelDetail(
        name="iris",
        status=endpoint,
        endpoint_name="modeldrop-iris",
        live_version=None,
        updated_at=None,
        last_deployment=history[0] if history else None,
        history=history,
    )


class _Scripted(StackClient):
    """GET /models/iris answers these, one per poll (a RestApiError is raised)."""

    def __init__(self, answers: list[ModelDetail | RestApiError | None]) -> None:
        super().__init__("http://127.0.0.1:1", "test")
        self._answers: Iterator[ModelDetail | RestApiError | None] = iter(answers)

    def describe_model(self, model_name: str) -> ModelDetail | None:
        answer = next(self._answers)
        if isinstance(answer, RestApiError):
            raise answer
        return answer


def test_follow_reports_each_transition_once_and_rides_out_a_failed_poll() -> None:
    # Given an API that has no record yet, then fails one poll, then shows v2 of this object deploying
    stack = _Scripted(
        [
            None,
            RestApiError(500, "InternalError", "Internal error"),
            _detail("InService", (2, "Deploying", "obj-2"), (1, "InService", "obj-1")),
            _detail("Updating", (2, "Deploying", "obj-2"), (1, "InService", "obj-1")),
            _detail("Updating", (2, "Deploying", "obj-2"), (1, "InService", "obj-1")),
            _detail("InService", (2, "InService", "obj-2"), (1, "Superseded", "obj-1")),
        ]
    )
    lines: list[str] = []
    waits: list[str] = []
    # When the deployment of object version obj-2 is followed
    deployment = stack.follow(
        "iris", "obj-2", progress=lines.append, waiting=lambda line, _s: waits.append(line), poll_s=0
    )
    # Then each new line is reported once, the failed poll was asked again, and v2 is returned
    assert lines == [
        "v2 Deploying (endpoint InService)",
        "v2 Deploying (endpoint Updating)",
        "v2 InService (endpoint InService)",
    ]
    assert waits[0] == "waiting for the deployment of iris to be recorded"
    assert (deployment.version, deployment.status) == (2, "InService")


def test_follow_by_version_finds_that_deployment() -> None:
    stack = _Scripted([_detail("InService", (3, "InService", "obj-1"), (2, "Failed", "obj-2"))])
    assert stack.follow("iris", version=2, progress=lambda _line: None, poll_s=0).status == "Failed"


def test_a_client_error_of_the_api_ends_the_follow_at_once() -> None:
    # Given an API refusing the key (403): no retry can help
    stack = _Scripted([RestApiError(403, "Forbidden", "Forbidden")])
    # When followed, Then the API's error is raised as it is
    with pytest.raises(RestApiError, match="Forbidden: Forbidden"):
        stack.follow("iris", "obj-1", progress=lambda _line: None, poll_s=0)


def test_a_poll_that_keeps_failing_is_reported_with_the_timeout() -> None:
    stack = _Scripted([RestApiError(503, "ServiceUnavailable", "busy")] * 10_000)
    with pytest.raises(
        TimeoutError, match=r"not final after 0 s \(the last poll failed: ServiceUnavailable: busy\)"
    ):
        stack.follow("iris", "obj-1", timeout_s=0.05, progress=lambda _line: None, poll_s=0.001)
