"""The bake's decision: each rule on its own, and the reason names the figures it used."""

from __future__ import annotations

import pytest
from modeldrop.frameworks import Framework
from modeldrop.guardrails.agreement import answers_agree
from modeldrop.guardrails.config import CanaryRollout, ShadowRollout
from modeldrop.guardrails.judge import Decision, VersionFigures, judge
from modeldrop.model_config import ConfigDefaults, parse_model_config, resolve_config
from modeldrop.rejection import UploadRejected

CANARY = CanaryRollout(
    strategy="canary",
    canary_percent=20,
    bake_seconds=60,
    max_error_rate=0.01,
    max_p99_latency_ms=200,
    min_requests=50,
)
SHADOW = ShadowRollout(strategy="shadow", bake_seconds=60, min_agreement=0.99, min_requests=50)


def figures(version: int, requests: int, errors: int = 0, p99: float = 10.0, **more: int) -> VersionFigures:
    return VersionFigures(version=version, requests=requests, errors=errors, p99_ms=p99, **more)


def test_keeps_baking_until_the_bake_is_over() -> None:
    verdict = judge(CANARY, figures(1, 500), figures(2, 100), elapsed_s=59)
    assert verdict.decision is Decision.KEEP_BAKING
    assert "59 of bake_seconds 60" in verdict.reason


def test_keeps_baking_without_min_requests_per_version() -> None:
    # Given a candidate that had 49 requests when each version needs 50
    verdict = judge(CANARY, figures(1, 500), figures(2, 49), elapsed_s=61)
    # Then neither promoted nor rolled back, and the reason says who is short
    assert verdict.decision is Decision.KEEP_BAKING
    assert "min_requests 50 per version, have v2 49" in verdict.reason


def test_promotes_within_every_limit() -> None:
    verdict = judge(CANARY, figures(1, 400, errors=1), figures(2, 100, p99=150), elapsed_s=60)
    assert verdict.decision is Decision.PROMOTE
    assert "v2: 100 requests, 0 errors (rate 0), p99 150.0 ms" in verdict.reason


def test_rolls_back_on_error_rate_with_the_figures_in_the_reason() -> None:
    verdict = judge(CANARY, figures(1, 400), figures(2, 100, errors=25), elapsed_s=60)
    assert verdict.decision is Decision.ROLL_BACK
    assert "error rate 0.25 (25 of 100 requests) above max_error_rate 0.01" in verdict.reason


def test_an_error_rate_at_the_limit_passes() -> None:
    verdict = judge(CANARY, figures(1, 400), figures(2, 100, errors=1), elapsed_s=60)
    assert verdict.decision is Decision.PROMOTE


def test_rolls_back_on_p99_latency() -> None:
    verdict = judge(CANARY, figures(1, 400), figures(2, 100, p99=250.5), elapsed_s=60)
    assert verdict.decision is Decision.ROLL_BACK
    assert "p99 latency 250.5 ms above max_p99_latency_ms 200" in verdict.reason


def test_no_latency_limit_means_latency_does_not_decide() -> None:
    rollout = CANARY.model_copy(update={"max_p99_latency_ms": None})
    assert (
        judge(rollout, figures(1, 400), figures(2, 100, p99=9999), elapsed_s=60).decision is Decision.PROMOTE
    )


def test_shadow_needs_min_agreement() -> None:
    low = figures(2, 100, agreed=90, compared=100)
    verdict = judge(SHADOW, figures(1, 100), low, elapsed_s=60)
    assert verdict.decision is Decision.ROLL_BACK
    assert "agreement 0.9 (90 of 100 answers) below min_agreement 0.99" in verdict.reason
    high = figures(2, 100, agreed=100, compared=100)
    assert judge(SHADOW, figures(1, 100), high, elapsed_s=60).decision is Decision.PROMOTE


def test_shadow_without_any_comparison_is_rolled_back() -> None:
    verdict = judge(SHADOW, figures(1, 100), figures(2, 100, agreed=0, compared=0), elapsed_s=60)
    assert verdict.decision is Decision.ROLL_BACK
    assert "no answer of the candidate could be compared" in verdict.reason


@pytest.mark.parametrize(
    ("live", "candidate", "agree"),
    [
        (b"[0, 1, 2]", b"[0,1,2]", True),
        (b'{"p": [0.1, 0.9]}', b'{"p": [0.1000000001, 0.8999999999]}', True),
        (b'{"p": [0.1, 0.9]}', b'{"p": [0.1001, 0.8999]}', False),
        (b"[0, 1]", b"[0, 1, 2]", False),
        (b"[true]", b"[1]", False),
        (b'{"a": 1}', b'{"b": 1}', False),
        (b"\x00\x01", b"\x00\x01", True),
        (b"\x00\x01", b"\x00\x02", False),
    ],
)
def test_answers_agree(live: bytes, candidate: bytes, agree: bool) -> None:
    assert answers_agree(live, candidate) is agree


def test_modeldrop_json_rollout_is_validated_and_recorded() -> None:
    # Given a canary section
    config = parse_model_config(
        b'{"rollout": {"strategy": "canary", "canary_percent": 20, "bake_seconds": 30}}'
    )
    resolved = resolve_config(
        config,
        defaults=ConfigDefaults(),
        detected_framework=Framework.SKLEARN,
        uncompressed_bytes=1,
        region="us-east-1",
    )
    # Then the deployment records it with every default spelt out, stored as JSON text
    assert resolved.rollout == CanaryRollout(strategy="canary", canary_percent=20, bake_seconds=30)
    stored = resolved.model_dump(mode="json", by_alias=True)["rollout"]
    assert '"canary_percent":20.0' in stored and '"min_requests":50' in stored
    reread = type(resolved).model_validate({**resolved.model_dump(by_alias=True), "rollout": stored})
    assert reread.rollout == resolved.rollout


@pytest.mark.parametrize(
    ("raw", "reason"),
    [
        (b'{"rollout": {"strategy": "blue"}}', "rollout"),
        (
            b'{"rollout": {"strategy": "canary", "canary_percent": 100}}',
            "canary_percent must be less than 100",
        ),
        (b'{"rollout": {"strategy": "shadow", "canary_percent": 5}}', "unknown key 'canary_percent'"),
        (b'{"rollout": {"strategy": "canary", "bake_seconds": 0}}', "bake_seconds must be greater than"),
    ],
)
def test_bad_rollouts_are_rejected_by_name(raw: bytes, reason: str) -> None:
    with pytest.raises(UploadRejected) as caught:
        parse_model_config(raw)
    assert reason in caught.value.reason
