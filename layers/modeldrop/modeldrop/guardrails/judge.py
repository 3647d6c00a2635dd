"""The decision at the end of a bake, from each version's figures: promote, roll back, or keep baking.

A pure function of the rollout's limits and the figures (modeldrop.guardrails.figures reads them from
CloudWatch), so each rule is tested on its own and the reason always names the figures it used.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from pydantic import BaseModel, ConfigDict

from modeldrop.guardrails.config import CanaryRollout, ShadowRollout


class VersionFigures(BaseModel):
    """One version's figures over the bake so far. `agreed`/`compared`: a shadow candidate's answers
    that agreed with the live one, of those compared."""

    model_config = ConfigDict(frozen=True)

    version: int
    requests: int = 0
    errors: int = 0
    p99_ms: float | None = None
    agreed: int | None = None
    compared: int | None = None

    @property
    def error_rate(self) -> float:
        return self.errors / self.requests if self.requests else 0.0

    @property
    def agreement(self) -> float | None:
        if not self.compared or self.agreed is None:
            return None
        return self.agreed / self.compared


class Decision(StrEnum):
    PROMOTE = "Promote"
    ROLL_BACK = "RollBack"
    # The bake is not over, or a version has not had min_requests yet: judged again later.
    KEEP_BAKING = "KeepBaking"


@dataclass(frozen=True)
class Verdict:
    decision: Decision
    reason: str


def judge(
    rollout: CanaryRollout | ShadowRollout,
    live: VersionFigures,
    candidate: VersionFigures,
    *,
    elapsed_s: float,
) -> Verdict:
    if elapsed_s < rollout.bake_seconds:
        return Verdict(
            Decision.KEEP_BAKING, f"baking: {elapsed_s:.0f} of bake_seconds {rollout.bake_seconds} elapsed"
        )
    short = [
        f"v{figures.version} {figures.requests}"
        for figures in (live, candidate)
        if figures.requests < rollout.min_requests
    ]
    if short:
        return Verdict(
            Decision.KEEP_BAKING,
            f"not enough traffic to judge: min_requests {rollout.min_requests} per version, "
            f"have {', '.join(short)}; promote or abort by hand, or wait for more requests",
        )
    failures: list[str] = []
    if candidate.error_rate > rollout.max_error_rate:
        failures.append(
            f"error rate {candidate.error_rate:.4g} ({candidate.errors} of {candidate.requests} requests) "
            f"above max_error_rate {rollout.max_error_rate:g}"
        )
    limit = rollout.max_p99_latency_ms
    if limit is not None and candidate.p99_ms is not None and candidate.p99_ms > limit:
        failures.append(f"p99 latency {candidate.p99_ms:.1f} ms above max_p99_latency_ms {limit:g}")
    agreement = candidate.agreement
    if isinstance(rollout, ShadowRollout):
        if agreement is None:
            failures.append("no answer of the candidate could be compared with the live one")
        elif agreement < rollout.min_agreement:
            failures.append(
                f"agreement {agreement:.4g} ({candidate.agreed} of {candidate.compared} answers) "
                f"below min_agreement {rollout.min_agreement:g}"
            )
    summary = _summary(live, candidate)
    if failures:
        return Verdict(
            Decision.ROLL_BACK, f"v{candidate.version} rolled back: {'; '.join(failures)} ({summary})"
        )
    return Verdict(Decision.PROMOTE, f"v{candidate.version} promoted: within every limit ({summary})")


def _summary(live: VersionFigures, candidate: VersionFigures) -> str:
    def one(figures: VersionFigures) -> str:
        p99 = f"{figures.p99_ms:.1f} ms" if figures.p99_ms is not None else "n/a"
        text = (
            f"v{figures.version}: {figures.requests} requests, {figures.errors} errors "
            f"(rate {figures.error_rate:.4g}), p99 {p99}"
        )
        if figures.agreement is not None:
            text += f", agreement {figures.agreement:.4g} ({figures.agreed} of {figures.compared})"
        return text

    return f"live {one(live)}; candidate {one(candidate)}"
