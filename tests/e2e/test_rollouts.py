"""Canary and shadow rollouts on the local cloud with the real template, a client calling throughout:
a canary splits the traffic as asked and is promoted; a candidate failing on some inputs is rolled back
with its error rate in the reason, and no request is lost to it beyond its share; a shadow never changes
what clients receive, and is promoted or rolled back on agreement."""

from __future__ import annotations

import json
import math
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
from modeldrop.api.models import ModelDetail, RolloutView
from modeldrop_local.example_models import (
    CUSTOM_INFERENCE_PY,
    build_custom_inference,
    build_sklearn_iris,
    predict_in_process,
)
from modeldrop_local.service_quotas import reset_quotas, set_quota
from modeldrop_local.stack_client import StackClient

from tests.e2e.clients import deploy

pytestmark = pytest.mark.e2e


@pytest.fixture(autouse=True, scope="module")
def room_for_every_model_of_this_module() -> Iterator[None]:
    """This module's four models, with a candidate each, are at the account's default serverless
    quotas (5 endpoints, 10 concurrency); a candidate endpoint still being deleted by an earlier test
    would get the next upload Rejected by the preflight. The preflight is tested in test_rollback.py."""
    set_quota("L-99AD19BF", 20)
    set_quota("L-96300102", 50)
    yield
    reset_quotas()


SMALL = {"max_concurrency": 2}
# Rows the failing candidate refuses (first feature above 6) and rows it answers.
SMALL_FLOWER = [[5.1, 3.5, 1.4, 0.2]]
LARGE_FLOWER = [[6.7, 3.1, 4.4, 1.4]]
FAILING_INFERENCE_PY = CUSTOM_INFERENCE_PY.replace(
    "def predict_fn(input_data, model):\n    return model.predict(input_data)",
    "def predict_fn(input_data, model):\n"
    "    if (input_data[:, 0] > 6).any():\n"
    "        raise ValueError('this candidate fails on large flowers')\n"
    "    return model.predict(input_data)",
)
# The Api function's record cache (MODEL_RECORD_CACHE_TTL_SECONDS, 5 s by default): for this long
# after a routing change some requests may still follow the previous routing.
ROUTING_SETTLES_S = 6.0


@dataclass(frozen=True)
class Answer:
    at: float  # time.time() when the answer came
    status: int
    version: int | None
    body: Any


@contextmanager
def calling(stack: StackClient, name: str, payloads: list[list[list[float]]]) -> Iterator[list[Answer]]:
    """A client calling the model back to back, cycling through `payloads`, until the block ends."""
    answers: list[Answer] = []
    stop = threading.Event()

    def client() -> None:
        turn = 0
        while not stop.is_set():
            payload = payloads[turn % len(payloads)]
            turn += 1
            response = stack.invoke(name, json.dumps(payload).encode(), "application/json")
            version = response.headers.get("x-modeldrop-version")
            try:  # the custom inference.py answers JSON without saying so
                body = response.json()
            except ValueError:
                body = response.text
            answers.append(Answer(time.time(), response.status_code, int(version) if version else None, body))

    thread = threading.Thread(target=client)
    thread.start()
    try:
        yield answers
    finally:
        stop.set()
        thread.join(timeout=30)


def wait_for_rollout(stack: StackClient, name: str, states: set[str], timeout_s: float = 180) -> RolloutView:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        detail = stack.describe_model(name)
        if detail is not None and detail.rollout is not None and detail.rollout.state in states:
            return detail.rollout
        time.sleep(0.3)
    raise TimeoutError(f"rollout of {name} not in {states} after {timeout_s} s")


def wait_for_deployment(stack: StackClient, name: str, version: int, timeout_s: float = 180) -> ModelDetail:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        detail = stack.describe_model(name)
        if detail is not None:
            deployment = next((d for d in detail.history if d.version == version), None)
            if deployment is not None and deployment.status not in ("Queued", "Deploying"):
                return detail
        time.sleep(0.3)
    raise TimeoutError(f"v{version} of {name} not final after {timeout_s} s")


def epoch(timestamp: str) -> float:
    return datetime.fromisoformat(timestamp.replace("Z", "+00:00")).timestamp()


def binomial_bound(trials: int, p: float, sigmas: float = 4.0) -> float:
    return sigmas * math.sqrt(trials * p * (1 - p))


def candidate_endpoint_gone(stack: StackClient, name: str, version: int, timeout_s: float = 60) -> bool:
    """Whether the candidate's endpoint is deleted (the state machine deletes it once the routing to it
    has settled, so it may take a few seconds more than the rollout's end)."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        endpoints = stack.client("sagemaker").list_endpoints()["Endpoints"]
        if f"modeldrop-{name}-v{version}" not in {endpoint["EndpointName"] for endpoint in endpoints}:
            return True
        time.sleep(0.5)
    return False


def test_canary_splits_traffic_as_asked_and_is_promoted(stack: StackClient, models_dir: Path) -> None:
    # Given v1 live, and v2 uploaded with a 20% canary that bakes 12 s
    name = "canary-iris"
    v1 = build_sklearn_iris(models_dir / "canary-v1", config=SMALL)
    rollout = {"strategy": "canary", "canary_percent": 20, "bake_seconds": 12, "min_requests": 10}
    v2 = build_custom_inference(models_dir / "canary-v2", config={**SMALL, "rollout": rollout})
    assert deploy(stack, v1, name).status == "InService"
    old = predict_in_process(v1, SMALL_FLOWER)
    new = predict_in_process(v2, SMALL_FLOWER)

    with calling(stack, name, [SMALL_FLOWER]) as answers:
        stack.upload(v2, name)
        # When the bake runs to its end with the client calling throughout
        baking = wait_for_rollout(stack, name, {"Baking"})
        promoted = wait_for_rollout(stack, name, {"Promoted", "RolledBack", "Aborted"})
        detail = wait_for_deployment(stack, name, 2)
        time.sleep(ROUTING_SETTLES_S)

    # Then v2 was promoted with its figures in the reason, and is live on the model's own endpoint
    assert promoted.state == "Promoted", promoted
    assert promoted.reason is not None and "v2 promoted: within every limit" in promoted.reason
    assert detail.live_version == 2 and detail.history[0].status == "InService"
    assert detail.endpoint_name == "modeldrop-canary-iris"
    assert candidate_endpoint_gone(stack, name, 2)
    # And no request failed; each answer is the answer of the version its header names
    assert answers and [a for a in answers if a.status != 200] == []
    mislabelled = [a for a in answers if a.body != {1: old, 2: new}.get(a.version or 0)]
    assert mislabelled == [], (mislabelled[:3], len(mislabelled), len(answers))
    # And while the canary routing held, the candidate's share is 20% within a binomial bound
    window = [
        a
        for a in answers
        if epoch(baking.started_at or "") + ROUTING_SETTLES_S <= a.at <= epoch(promoted.updated_at or "")
    ]
    to_candidate = sum(1 for a in window if a.version == 2)
    assert len(window) >= 50, len(window)
    assert abs(to_candidate - 0.2 * len(window)) <= binomial_bound(len(window), 0.2), (
        to_candidate,
        len(window),
    )
    # And after the promotion every answer is v2's
    assert {a.version for a in answers[-5:]} == {2}
    # And GET /models/{name} shows both versions' figures from CloudWatch
    figures = {f.version: f for f in promoted.versions}
    assert figures[2].requests >= 10 and figures[2].errors == 0 and figures[2].p99_ms is not None
    assert figures[1].requests >= 10


def test_a_candidate_failing_on_some_inputs_is_rolled_back_with_its_error_rate(
    stack: StackClient, models_dir: Path
) -> None:
    # Given v1 live, and v2 (fails on large flowers) uploaded with a 20% canary
    name = "canary-failing"
    v1 = build_sklearn_iris(models_dir / "failing-v1", config=SMALL)
    rollout = {
        "strategy": "canary",
        "canary_percent": 20,
        "bake_seconds": 10,
        "min_requests": 10,
        "max_error_rate": 0.05,
    }
    v2 = build_custom_inference(
        models_dir / "failing-v2", config={**SMALL, "rollout": rollout}, inference_code=FAILING_INFERENCE_PY
    )
    assert deploy(stack, v1, name).status == "InService"

    with calling(stack, name, [SMALL_FLOWER, LARGE_FLOWER]) as answers:
        stack.upload(v2, name)
        # When the bake ends
        ended = wait_for_rollout(stack, name, {"Promoted", "RolledBack", "Aborted"})
        detail = wait_for_deployment(stack, name, 2)
        time.sleep(ROUTING_SETTLES_S)

    # Then v2 was rolled back, the reason naming its error rate, and v1 kept serving
    assert ended.state == "RolledBack", ended
    assert (
        ended.reason is not None
        and "error rate" in ended.reason
        and "above max_error_rate 0.05" in ended.reason
    )
    deployment = detail.history[0]
    assert deployment.version == 2 and deployment.status == "Failed"
    assert deployment.reason is not None and "error rate" in deployment.reason
    assert detail.live_version == 1
    assert candidate_endpoint_gone(stack, name, 2)
    # And every failed request was the candidate's, on the inputs it fails on, within its share
    failed = [a for a in answers if a.status != 200]
    assert failed and all(a.status == 502 and a.version == 2 for a in failed)
    share = 0.2 * 0.5  # a fifth of the requests, half of them large flowers
    assert len(failed) <= share * len(answers) + binomial_bound(len(answers), share), (
        len(failed),
        len(answers),
    )
    # And once rolled back, only v1 answers
    assert {a.version for a in answers[-5:]} == {1}


def test_shadow_never_changes_what_clients_receive_and_is_judged_on_agreement(
    stack: StackClient, models_dir: Path
) -> None:
    # Given v1 live; v2 the same model, v3 a different one (answers with class names), both as shadows
    name = "shadow-iris"
    rollout = {"strategy": "shadow", "bake_seconds": 8, "min_requests": 10, "min_agreement": 0.99}
    v1 = build_sklearn_iris(models_dir / "shadow-v1", config=SMALL)
    v2 = build_sklearn_iris(models_dir / "shadow-v2", config={**SMALL, "rollout": rollout})
    v3 = build_custom_inference(models_dir / "shadow-v3", config={**SMALL, "rollout": rollout})
    assert deploy(stack, v1, name).status == "InService"
    live_answer = predict_in_process(v1, SMALL_FLOWER)

    # When v2 bakes as a shadow with a client calling throughout
    with calling(stack, name, [SMALL_FLOWER]) as during_v2:
        stack.upload(v2, name)
        agreed = wait_for_rollout(stack, name, {"Promoted", "RolledBack", "Aborted"})
        wait_for_deployment(stack, name, 2)
        time.sleep(ROUTING_SETTLES_S)
    # Then clients got v1's answers until v2 went live; v2 agreed on every compared answer
    assert agreed.state == "Promoted", agreed
    assert [a for a in during_v2 if a.status != 200] == []
    assert all(a.body == live_answer for a in during_v2)
    baked = [a for a in during_v2 if a.at <= epoch(agreed.updated_at or "")]
    assert baked and {a.version for a in baked} == {1}
    figures = {f.version: f for f in agreed.versions}
    assert figures[2].agreement == 1.0 and figures[2].requests >= 10

    # When v3, which answers differently, bakes as a shadow of v2
    with calling(stack, name, [SMALL_FLOWER]) as during_v3:
        stack.upload(v3, name)
        disagreed = wait_for_rollout(stack, name, {"RolledBack", "Aborted"})
        detail = wait_for_deployment(stack, name, 3)
    # Then it is rolled back on agreement, and no client ever saw its answers
    assert disagreed.state == "RolledBack", disagreed
    assert disagreed.reason is not None and "below min_agreement 0.99" in disagreed.reason
    assert detail.live_version == 2
    assert [a for a in during_v3 if a.status != 200] == []
    assert during_v3 and all(a.body == live_answer and a.version == 2 for a in during_v3)
    assert candidate_endpoint_gone(stack, name, 3)


def test_a_bake_ends_by_hand_or_by_a_newer_upload_with_no_endpoint_left(
    stack: StackClient, models_dir: Path
) -> None:
    # Given v1 live and v2 baking as a canary that would bake for an hour
    name = "canary-by-hand"
    rollout = {"strategy": "canary", "canary_percent": 20, "bake_seconds": 3600}
    v1 = build_sklearn_iris(models_dir / "hand-v1", config=SMALL)
    v2 = build_sklearn_iris(models_dir / "hand-v2", config={**SMALL, "rollout": rollout})
    assert deploy(stack, v1, name).status == "InService"
    stack.upload(v2, name)
    wait_for_rollout(stack, name, {"Baking"})

    # When `modeldrop abort` ends it
    aborted = _cli(stack, "abort", name)
    # Then the candidate stops, is deleted, and v1 stays live
    assert aborted.exit_code == 0, aborted.output
    assert "aborted, rollout Aborted" in aborted.stdout
    detail = wait_for_deployment(stack, name, 2)
    assert detail.history[0].status == "Failed" and "aborted by hand" in (detail.history[0].reason or "")
    assert detail.live_version == 1 and candidate_endpoint_gone(stack, name, 2)
    # And a second abort is refused: nothing bakes any more
    again = _cli(stack, "abort", name)
    assert again.exit_code != 0 and "NoBakeInProgress" in again.output

    # When v3 bakes and v4 (no rollout) is uploaded during its bake
    v3 = build_sklearn_iris(models_dir / "hand-v3", config={**SMALL, "rollout": rollout})
    stack.upload(v3, name)
    wait_for_rollout(stack, name, {"Baking"})
    v4 = build_sklearn_iris(models_dir / "hand-v4", config=SMALL)
    assert deploy(stack, v4, name).status == "InService"
    # Then v3 is superseded, its endpoint gone, and v4 is live
    detail = wait_for_deployment(stack, name, 3)
    v3_record = next(d for d in detail.history if d.version == 3)
    assert v3_record.status == "Superseded" and "superseded by version 4" in (v3_record.reason or "")
    assert candidate_endpoint_gone(stack, name, 3)
    assert detail.live_version == 4

    # When v5 bakes and `modeldrop promote` promotes it before its bake is over
    v5 = build_sklearn_iris(models_dir / "hand-v5", config={**SMALL, "rollout": rollout})
    stack.upload(v5, name)
    wait_for_rollout(stack, name, {"Baking"})
    promoted = _cli(stack, "promote", name)
    assert promoted.exit_code == 0, promoted.output
    # Then v5 goes live on the model's endpoint, and its own endpoint goes
    detail = wait_for_deployment(stack, name, 5)
    history = [(d.version, d.status, d.reason) for d in detail.history]
    assert detail.live_version == 5, (history, detail.rollout)
    assert detail.rollout is not None and detail.rollout.state == "Promoted", (history, detail.rollout)
    assert detail.rollout.reason == "v5 promoted by hand"
    assert candidate_endpoint_gone(stack, name, 5)


def _cli(stack: StackClient, *arguments: str) -> Any:
    from modeldrop_local.cli import app
    from typer.testing import CliRunner

    return CliRunner().invoke(
        app, [*arguments, "--endpoint-url", str(stack.endpoint_url), "--stack-name", stack.stack_name]
    )
