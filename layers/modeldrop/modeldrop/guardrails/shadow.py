"""The Shadow function's logic: send the copy of a request to the candidate, record its answer's figures
and whether it agrees with the live answer. It runs off the client's path (an asynchronous invocation
from the Api function), so nothing here can change or delay what a client receives."""

from __future__ import annotations

import base64
import time

from aws_lambda_powertools import Logger
from pydantic import BaseModel, ConfigDict

from modeldrop.api.errors import ApiError, ModelNotInService
from modeldrop.api.runtime import ModelRuntime
from modeldrop.guardrails.agreement import answers_agree
from modeldrop.guardrails.metrics import record_answer, record_comparison
from modeldrop.guardrails.serving import ShadowRequest, is_version_failure

logger = Logger(child=True)


class ShadowOutcome(BaseModel):
    model_config = ConfigDict(frozen=True)

    answered: bool
    agreed: bool | None = None
    error: str | None = None


def compare_with_candidate(request: ShadowRequest, runtime: ModelRuntime) -> ShadowOutcome:
    started = time.perf_counter()
    try:
        result = runtime.invoke(request.model_name, request.candidate_endpoint_name, request.invocation())
    except ModelNotInService:
        # The bake ended and the candidate's endpoint is gone: nothing to judge any more.
        return ShadowOutcome(answered=False, error="ModelNotInService")
    except ApiError as error:
        latency_ms = (time.perf_counter() - started) * 1000
        failed = is_version_failure(error)
        record_answer(request.model_name, request.candidate_version, latency_ms=latency_ms, error=failed)
        if failed:
            # A failure is an error, not a disagreement: the error rate judges it.
            return ShadowOutcome(answered=False, error=error.code)
        # The candidate refused what the live version answered (its own 4xx): a disagreement.
        record_comparison(request.model_name, request.candidate_version, agreed=False)
        return ShadowOutcome(answered=True, agreed=False, error=error.code)
    latency_ms = (time.perf_counter() - started) * 1000
    record_answer(request.model_name, request.candidate_version, latency_ms=latency_ms, error=False)
    agreed = answers_agree(base64.b64decode(request.live_body), result.body)
    record_comparison(request.model_name, request.candidate_version, agreed=agreed)
    if not agreed:
        logger.info("shadow answer differs", extra={"model": request.model_name})
    return ShadowOutcome(answered=True, agreed=agreed)
