"""The Shadow function's logic: what a copy's answer counts for in the bake's figures (EMF on stdout)."""

from __future__ import annotations

import base64
import json
from typing import Any

import pytest
from modeldrop.api.errors import ApiError, ModelInvocationFailed, ModelNotReady, Throttled
from modeldrop.api.models import Invocation, InvocationResult
from modeldrop.guardrails.serving import ShadowRequest
from modeldrop.guardrails.shadow import compare_with_candidate

LIVE_ANSWER = b"[0, 1]"


class CandidateRuntime:
    """The candidate's endpoint: answers with `body`, or raises `error`."""

    def __init__(self, body: bytes = LIVE_ANSWER, error: ApiError | None = None) -> None:
        self.body, self.error = body, error

    def invoke(self, model: str, endpoint_name: str, invocation: Invocation) -> InvocationResult:
        assert endpoint_name == "modeldrop-iris-v2"
        if self.error is not None:
            raise self.error
        return InvocationResult(body=self.body, content_type="application/json")


def _copy() -> ShadowRequest:
    return ShadowRequest(
        model_name="iris",
        candidate_version=2,
        candidate_endpoint_name="modeldrop-iris-v2",
        body=base64.b64encode(b"[[5.1, 3.5, 1.4, 0.2], [6.7, 3.1, 4.4, 1.4]]").decode(),
        content_type="application/json",
        live_body=base64.b64encode(LIVE_ANSWER).decode(),
    )


def _figures(stdout: str) -> dict[str, float]:
    """The sums of the metrics the EMF records on stdout carry for iris v2."""
    sums: dict[str, float] = {}
    for line in stdout.splitlines():
        record: dict[str, Any] = json.loads(line)
        assert (record["Model"], record["Version"]) == ("iris", "2")
        for metric in record["_aws"]["CloudWatchMetrics"][0]["Metrics"]:
            value = record[metric["Name"]]  # Powertools writes a list of values per metric
            sums[metric["Name"]] = sums.get(metric["Name"], 0) + sum(
                value if isinstance(value, list) else [value]
            )
    return sums


def test_an_equal_answer_is_an_agreement(capsys: pytest.CaptureFixture[str]) -> None:
    # Given a candidate that answers what the live version answered, formatted otherwise
    runtime = CandidateRuntime(body=b"[0,1.0000000001]")
    # When the copy is compared
    outcome = compare_with_candidate(_copy(), runtime)
    # Then it is one answer, no error, one comparison that agreed
    assert (outcome.answered, outcome.agreed) == (True, True)
    figures = _figures(capsys.readouterr().out)
    assert {
        k: figures[k] for k in ("VersionRequests", "VersionErrors", "ShadowCompared", "ShadowAgreed")
    } == {
        "VersionRequests": 1,
        "VersionErrors": 0,
        "ShadowCompared": 1,
        "ShadowAgreed": 1,
    }


def test_the_models_own_refusal_of_what_live_answered_is_a_disagreement(
    capsys: pytest.CaptureFixture[str],
) -> None:
    # Given a candidate whose code refuses the request with its own 400
    runtime = CandidateRuntime(error=ModelInvocationFailed("bad input", model="iris", status=400))
    # When the copy is compared
    outcome = compare_with_candidate(_copy(), runtime)
    # Then it is compared and disagrees, and is not counted as the version's failure
    assert (outcome.answered, outcome.agreed) == (True, False)
    figures = _figures(capsys.readouterr().out)
    assert (figures["VersionErrors"], figures["ShadowCompared"], figures["ShadowAgreed"]) == (0, 1, 0)


@pytest.mark.parametrize(
    "busy", [Throttled("at MaxConcurrency", model="iris"), ModelNotReady("starting", model="iris")]
)
def test_a_copy_the_candidate_had_no_capacity_for_is_neither_compared_nor_an_error(
    capsys: pytest.CaptureFixture[str], busy: ApiError
) -> None:
    # Given a candidate that throttles the copy (the copies come on top of its MaxConcurrency) or is starting
    runtime = CandidateRuntime(error=busy)
    # When the copy is sent
    outcome = compare_with_candidate(_copy(), runtime)
    # Then nothing is judged from it: no answer, no comparison, no error recorded
    assert (outcome.answered, outcome.agreed, outcome.error) == (False, None, busy.code)
    assert capsys.readouterr().out == ""
