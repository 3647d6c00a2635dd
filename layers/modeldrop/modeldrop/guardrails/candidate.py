"""OnUpload's part of a bake (modeldrop.guardrails.bake): whether an upload bakes (modeldrop.rollout's
begin_candidate then starts it), and the end of a bake that a newer upload supersedes."""

from __future__ import annotations

from typing import TYPE_CHECKING

from modeldrop.guardrails.state import RolloutPhase, RolloutRecords, RolloutState
from modeldrop.records import Deployment, ModelItem, utc_now

if TYPE_CHECKING:
    from modeldrop.model_config import ResolvedConfig

# Model item statuses in which the live version serves (modeldrop.api.logic's servable states).
_LIVE_SERVES = frozenset({"InService", "Updating", "SystemUpdating"})

CANDIDATE_PHASE = "candidate"
PROMOTION_PHASE = "promotion"


def bakes(config: ResolvedConfig | None, model: ModelItem | None) -> bool:
    """A rollout is configured and there is a live version to bake against (a first version, or one
    uploaded while nothing serves, goes live all at once)."""
    return bool(
        config is not None
        and config.rollout is not None
        and model is not None
        and model.live_version is not None
        and model.status in _LIVE_SERVES
    )


def supersede_bake(model_name: str, newer: Deployment, rollouts: RolloutRecords) -> bool:
    """A newer upload ends a bake: no more traffic to the candidate; its execution then deletes the
    candidate's endpoint at its next step (bake_judge answers Aborted)."""
    state = rollouts.get(model_name)
    if state is None or state.state is not RolloutPhase.BAKING or state.candidate_version >= newer.version:
        return False
    reason = f"superseded by version {newer.version} ({newer.deployment_id}), uploaded during the bake"
    aborted = ended(state, RolloutPhase.ABORTED, reason).model_copy(update={"superseded_by": newer.version})
    return rollouts.replace(model_name, aborted, expected=(RolloutPhase.BAKING,))


def ended(state: RolloutState, phase: RolloutPhase, reason: str) -> RolloutState:
    return state.model_copy(
        update={
            "state": phase,
            "candidate_weight": 0,
            "mirror": False,
            "reason": reason,
            "updated_at": utc_now(),
        }
    )
