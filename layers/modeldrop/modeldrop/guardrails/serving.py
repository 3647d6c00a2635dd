"""One invocation of a model through its routing: the chosen version answers, its figures are recorded,
and during a shadow bake a copy goes to the candidate (ShadowSender) after the live answer is in hand."""

from __future__ import annotations

import base64
import json
import time
from collections.abc import Callable
from typing import Any, Protocol

from aws_lambda_powertools import Logger
from pydantic import BaseModel, ConfigDict
from pydantic.alias_generators import to_camel

from modeldrop.api.errors import (
    ApiError,
    ModelInvocationFailed,
    ModelNotInService,
    ModelTimeout,
    UpstreamFailure,
)
from modeldrop.api.models import Invocation, InvocationResult
from modeldrop.api.runtime import ModelRuntime
from modeldrop.guardrails.metrics import record_answer
from modeldrop.guardrails.routing import Route, Routing

logger = Logger(child=True)

VERSION_HEADER = "x-modeldrop-version"
# Lambda's limit for an asynchronous invocation's payload (Lambda quotas page, "Invocation payload"):
# a copy above it (base64 and the envelope included) is not sent; ShadowSkipped counts those.
MAX_SHADOW_PAYLOAD_BYTES = 256 * 1024


def is_version_failure(error: ApiError) -> bool:
    """A failure of the version that answered (what a bake judges), not of the caller's request."""
    if isinstance(error, ModelInvocationFailed):
        return error.status >= 500
    return isinstance(error, UpstreamFailure | ModelTimeout)


class ShadowRequest(BaseModel):
    """What the Shadow function gets: the request, the live answer, and where the candidate is."""

    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, frozen=True)

    model_name: str
    candidate_version: int
    candidate_endpoint_name: str
    body: str  # base64
    content_type: str | None = None
    accept: str | None = None
    live_body: str  # base64
    live_content_type: str | None = None

    def invocation(self) -> Invocation:
        return Invocation(
            body=base64.b64decode(self.body), content_type=self.content_type, accept=self.accept
        )


class ShadowSender(Protocol):
    def send(self, request: ShadowRequest) -> bool: ...


class LambdaShadowSender:
    """Sends the copy as an asynchronous invocation (InvocationType=Event) of the Shadow function: Lambda
    queues it and answers 202 at once, so the client's answer does not wait for the candidate."""

    def __init__(self, client: Any, function_name: str) -> None:
        self._client = client
        self._function_name = function_name

    def send(self, request: ShadowRequest) -> bool:
        payload = request.model_dump_json(by_alias=True).encode()
        if len(payload) > MAX_SHADOW_PAYLOAD_BYTES:
            return False
        self._client.invoke(FunctionName=self._function_name, InvocationType="Event", Payload=payload)
        return True


def answer(
    name: str,
    invocation: Invocation,
    routing: Routing,
    runtime: ModelRuntime,
    *,
    shadow: ShadowSender | None = None,
    draw: Callable[[], float],
) -> InvocationResult:
    route = routing.choose(draw())
    try:
        result = _invoke(name, invocation, route, runtime)
    except ModelNotInService:
        if not route.is_candidate:
            raise
        # The candidate's endpoint is gone (the bake ended since this container read the routing):
        # the live version answers instead, and the candidate is not charged an error.
        route = routing.live
        result = _invoke(name, invocation, route, runtime)
    if routing.mirror and shadow is not None and routing.candidate is not None:
        _mirror(name, invocation, result, routing.candidate, shadow)
    return result


def _invoke(name: str, invocation: Invocation, route: Route, runtime: ModelRuntime) -> InvocationResult:
    started = time.perf_counter()
    try:
        result = runtime.invoke(name, route.endpoint_name, invocation)
    except ApiError as error:
        if route.version is not None:
            if not isinstance(error, ModelNotInService):
                record_answer(
                    name, route.version, latency_ms=_ms_since(started), error=is_version_failure(error)
                )
            error.extra_headers[VERSION_HEADER] = str(route.version)
        raise
    if route.version is not None:
        record_answer(name, route.version, latency_ms=_ms_since(started), error=False)
    return result.model_copy(update={"version": route.version})


def _mirror(
    name: str, invocation: Invocation, result: InvocationResult, candidate: Route, shadow: ShadowSender
) -> None:
    request = ShadowRequest(
        model_name=name,
        candidate_version=candidate.version or 0,
        candidate_endpoint_name=candidate.endpoint_name,
        body=base64.b64encode(invocation.body).decode("ascii"),
        content_type=invocation.content_type,
        accept=invocation.accept,
        live_body=base64.b64encode(result.body).decode("ascii"),
        live_content_type=result.content_type,
    )
    try:
        sent = shadow.send(request)
    except Exception:  # the client's answer never depends on the shadow copy
        logger.warning("shadow copy not sent", exc_info=True, extra={"model": name})
        sent = False
    if not sent:
        logger.info(
            "shadow copy skipped",
            extra={"model": name, "detail": json.dumps({"bytes": len(invocation.body)})},
        )


def _ms_since(started: float) -> float:
    return (time.perf_counter() - started) * 1000
