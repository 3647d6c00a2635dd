"""One invocation through a model's routing: which version answers, the header naming it, the fallback
when a candidate's endpoint is gone, and a shadow's copy that never touches the client's answer."""

from __future__ import annotations

import base64
from dataclasses import dataclass, field

import pytest
from modeldrop.api.errors import ModelInvocationFailed, ModelNotInService
from modeldrop.api.models import Invocation, InvocationResult
from modeldrop.guardrails.routing import Route, Routing
from modeldrop.guardrails.serving import VERSION_HEADER, ShadowRequest, answer

LIVE = Route("modeldrop-iris", 1, is_candidate=False)
CANDIDATE = Route("modeldrop-iris-v2", 2, is_candidate=True)
REQUEST = Invocation(body=b"[[5.1, 3.5, 1.4, 0.2]]", content_type="application/json")


@dataclass
class Endpoints:
    """A SageMaker runtime whose endpoints answer their own name, fail, or are gone."""

    failing: set[str] = field(default_factory=set)
    gone: set[str] = field(default_factory=set)
    calls: list[str] = field(default_factory=list)

    def invoke(self, model: str, endpoint_name: str, invocation: Invocation) -> InvocationResult:
        self.calls.append(endpoint_name)
        if endpoint_name in self.gone:
            raise ModelNotInService("gone", model=model)
        if endpoint_name in self.failing:
            raise ModelInvocationFailed("boom", model=model)
        return InvocationResult(body=f'"{endpoint_name}"'.encode(), content_type="application/json")


@dataclass
class Mirror:
    sent: list[ShadowRequest] = field(default_factory=list)
    fails: bool = False

    def send(self, request: ShadowRequest) -> bool:
        if self.fails:
            raise ConnectionError("Lambda unreachable")
        self.sent.append(request)
        return True


def test_a_canary_draw_below_the_weight_goes_to_the_candidate() -> None:
    routing = Routing(LIVE, CANDIDATE, candidate_weight=20, strategy="canary")
    runtime = Endpoints()
    assert answer("iris", REQUEST, routing, runtime, draw=lambda: 0.1).version == 2
    assert answer("iris", REQUEST, routing, runtime, draw=lambda: 0.5).version == 1
    assert runtime.calls == ["modeldrop-iris-v2", "modeldrop-iris"]


def test_a_gone_candidate_is_answered_by_the_live_version() -> None:
    routing = Routing(LIVE, CANDIDATE, candidate_weight=100, strategy="canary")
    result = answer("iris", REQUEST, routing, Endpoints(gone={"modeldrop-iris-v2"}), draw=lambda: 0.0)
    assert (result.version, result.body) == (1, b'"modeldrop-iris"')


def test_a_failing_version_is_named_on_the_error() -> None:
    routing = Routing(LIVE, CANDIDATE, candidate_weight=20, strategy="canary")
    with pytest.raises(ModelInvocationFailed) as failed:
        answer("iris", REQUEST, routing, Endpoints(failing={"modeldrop-iris-v2"}), draw=lambda: 0.0)
    assert failed.value.headers()[VERSION_HEADER] == "2"


def test_a_shadow_copy_carries_the_request_and_the_live_answer() -> None:
    routing = Routing(LIVE, CANDIDATE, mirror=True, strategy="shadow")
    mirror = Mirror()
    result = answer("iris", REQUEST, routing, Endpoints(), shadow=mirror, draw=lambda: 0.0)
    # The client gets the live answer; the candidate is not invoked on the client's path
    assert (result.version, result.body) == (1, b'"modeldrop-iris"')
    (copy,) = mirror.sent
    assert copy.candidate_endpoint_name == "modeldrop-iris-v2" and copy.candidate_version == 2
    assert base64.b64decode(copy.body) == REQUEST.body
    assert base64.b64decode(copy.live_body) == b'"modeldrop-iris"'


def test_a_shadow_copy_that_cannot_be_sent_changes_nothing_for_the_client() -> None:
    routing = Routing(LIVE, CANDIDATE, mirror=True, strategy="shadow")
    result = answer("iris", REQUEST, routing, Endpoints(), shadow=Mirror(fails=True), draw=lambda: 0.0)
    assert (result.version, result.body) == (1, b'"modeldrop-iris"')


def test_the_sample_events_are_what_the_functions_parse() -> None:
    from modeldrop.events import DeploymentStatusEvent

    from tests.utils import load_event

    judge = DeploymentStatusEvent.model_validate(load_event("deployment_status_bake_judge"))
    assert (judge.action, judge.deployment.rollout_phase) == ("bake_judge", "candidate")
    copy = ShadowRequest.model_validate(load_event("shadow_copy"))
    assert copy.invocation().body == REQUEST.body
    for name, path in (("api_promote", "/models/iris/promote"), ("api_abort", "/models/iris/abort")):
        event = load_event(name)
        assert (event["httpMethod"], event["path"]) == ("POST", path)
