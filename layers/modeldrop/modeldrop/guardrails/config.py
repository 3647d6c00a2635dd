"""The `rollout` section of modeldrop.json; absent, a new version goes live all at once (after its
smoke test).

{"rollout": {"strategy": "canary", "canary_percent": 20, "bake_seconds": 600,
             "max_error_rate": 0.01, "max_p99_latency_ms": 2000, "min_requests": 50}}
{"rollout": {"strategy": "shadow", "bake_seconds": 600, "min_agreement": 0.99, "min_requests": 50}}
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter

# A bake longer than a day keeps a second endpoint (and its quota share) for longer than any review needs.
MAX_BAKE_SECONDS = 86_400


class _Rollout(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    bake_seconds: int = Field(default=600, strict=True, ge=1, le=MAX_BAKE_SECONDS)
    # Requests each version must have answered during the bake before the judge decides.
    min_requests: int = Field(default=50, strict=True, ge=1)
    max_error_rate: float = Field(default=0.01, ge=0, le=1)
    # None: latency is reported but does not decide.
    max_p99_latency_ms: float | None = Field(default=None, gt=0)


class CanaryRollout(_Rollout):
    strategy: Literal["canary"]
    # The share of the model's requests the candidate answers during the bake.
    canary_percent: float = Field(default=10, gt=0, lt=100)


class ShadowRollout(_Rollout):
    strategy: Literal["shadow"]
    # The share of compared answers that must agree (equal JSON, numbers within AGREEMENT_TOLERANCE).
    min_agreement: float = Field(default=0.99, ge=0, le=1)


RolloutConfig = Annotated[CanaryRollout | ShadowRollout, Field(discriminator="strategy")]
_ROLLOUT_CONFIG: TypeAdapter[CanaryRollout | ShadowRollout] = TypeAdapter(RolloutConfig)


def parse_rollout(text: str) -> CanaryRollout | ShadowRollout:
    """The rollout as recorded on a deployment (its JSON text)."""
    return _ROLLOUT_CONFIG.validate_json(text)
