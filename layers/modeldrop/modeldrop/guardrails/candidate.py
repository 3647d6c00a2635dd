"""OnUpload's part of a bake (modeldrop.guardrails.bake): whether an upload bakes, the candidate's own
endpoint, the execution that follows it, and the end of a bake that a newer upload supersedes."""

from __future__ import annotations

from typing import Any

from modeldrop import naming
from modeldrop.events import ExecutionInput
from modeldrop.guardrails.config import parse_rollout
from modeldrop.guardrails.state import RolloutPhase, RolloutRecords, RolloutState
from modeldrop.records import Deployment, ModelItem, utc_now
from modeldrop.sagemaker_adapter import SageMakerAdapter

# Model item statuses in which the live version serves (modeldrop.api.logic's servable states).
_LIVE_SERVES = frozenset({"InService", "Updating", "SystemUpdating"})

CANDIDATE_PHASE = "candidate"
PROMOTION_PHASE = "promotion"


def candidate_endpoint_name(deployment: Deployment) -> str:
    """The candidate's own endpoint: one per version, so a superseded bake never shares a name."""
    return naming.versioned_name(deployment.model_name, deployment.version)


def bakes(config: dict[str, Any] | None, model: ModelItem | None) -> bool:
    """A rollout is configured and there is a live version to bake against (a first version, or one
    uploaded while nothing serves, goes live all at once)."""
    return bool(
        (config or {}).get("rollout")
        and model is not None
        and model.live_version is not None
        and model.status in _LIVE_SERVES
    )


def start_candidate(deployment: Deployment, sagemaker: SageMakerAdapter) -> str:
    """Create the candidate's endpoint on the deployment's config; its name."""
    name = candidate_endpoint_name(deployment)
    if sagemaker.describe_endpoint(name) is None:  # a retried upload may have created it already
        sagemaker.create_endpoint(name, deployment.endpoint_config_name or "")
    return name


def candidate_execution_input(deployment: Deployment, max_polls: int) -> ExecutionInput:
    rollout = parse_rollout(str((deployment.config or {})["rollout"]))
    return ExecutionInput(
        deployment_id=deployment.deployment_id,
        model_name=deployment.model_name,
        version=deployment.version,
        endpoint_name=candidate_endpoint_name(deployment),
        endpoint_config_name=deployment.endpoint_config_name or "",
        status="Deploying",
        max_polls=max_polls,
        rollout=rollout.strategy,
        rollout_phase=CANDIDATE_PHASE,
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
