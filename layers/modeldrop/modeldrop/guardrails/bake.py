"""The bake of a candidate version: its own endpoint beside the live one, traffic to it (canary) or a copy
of it (shadow), a judgement from each version's CloudWatch figures, then promotion or rollback.

The deploy state machine drives it (statemachine/deploy_endpoint.asl.json):

  OnUpload      `Rollout.begin_candidate`: the new version's config on an endpoint of its own
                (CreateEndpoint); the live endpoint is not touched. The execution follows the
                candidate's endpoint (rolloutPhase "candidate") through the usual wait and smoke test.
  bake_start    the routing: RolloutState Baking on the model item (the Api function reads it).
  bake_judge    every PollIntervalSeconds: a person's decision, else the judge (judge.py) on the figures
                (figures.py): KeepBaking, Promote, RollBack, or TimedOut once bake_seconds plus
                DeployTimeoutSeconds are over; Aborted when the rollout was aborted or superseded.
  bake_promote  the candidate answers every request (rollout Promoted, weight 100);
  bake_switch   then, once every warm Api container has read that, the live endpoint switches to the
                candidate's config: the one switch of an endpoint there is (modeldrop.rollout.
                Rollout.promote); the execution follows it (rolloutPhase "promotion") like any deployment.
  bake_end      the candidate's endpoint is deleted, the rollout and the deployment record say why.
  after live    `retire_candidate`: the candidate's weight back to 0 once the live endpoint serves its
                config; bake_retire deletes its endpoint once warm containers stopped routing to it.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import boto3

from modeldrop.deployments_table import DeploymentRecords
from modeldrop.events import DeploymentStatusEvent, ExecutionInput, StatusResult
from modeldrop.guardrails.candidate import CANDIDATE_PHASE, PROMOTION_PHASE, ended
from modeldrop.guardrails.config import CanaryRollout, ShadowRollout
from modeldrop.guardrails.figures import read_figures
from modeldrop.guardrails.judge import Decision, VersionFigures, judge
from modeldrop.guardrails.state import RequestedDecision, RolloutPhase, RolloutRecords, RolloutState
from modeldrop.observability import logger
from modeldrop.records import Deployment, DeploymentStatus, utc_now
from modeldrop.rollout import Rollout
from modeldrop.sagemaker_adapter import SageMakerAdapter

IN_FLIGHT = (DeploymentStatus.QUEUED, DeploymentStatus.DEPLOYING)
# A newer upload in one of these states supersedes a bake (last upload wins, as for a queued one).
_SUPERSEDES = (DeploymentStatus.QUEUED, DeploymentStatus.DEPLOYING, DeploymentStatus.IN_SERVICE)


class NoBakeInProgress(Exception):
    """Promote or abort asked of a model with no candidate baking."""


@dataclass(frozen=True)
class BakeDependencies:
    records: DeploymentRecords
    rollouts: RolloutRecords
    # The one place that switches an endpoint: promote and drop_candidate (it starts no execution here).
    rollout: Rollout
    cloudwatch: Any
    namespace: str
    deploy_timeout_s: int
    clock: Callable[[], datetime] = field(default=lambda: datetime.now(UTC))

    @classmethod
    def from_environment(cls) -> BakeDependencies:
        table = boto3.resource("dynamodb").Table(os.environ["DEPLOYMENTS_TABLE"])
        records = DeploymentRecords(table)
        return cls(
            records=records,
            rollouts=RolloutRecords(table),
            rollout=Rollout(records=records, sagemaker=SageMakerAdapter(boto3.client("sagemaker"))),
            cloudwatch=boto3.client("cloudwatch"),
            namespace=os.environ.get("POWERTOOLS_METRICS_NAMESPACE", "modeldrop"),
            deploy_timeout_s=int(os.environ.get("DEPLOY_TIMEOUT_SECONDS", "1800")),
        )


# ------------------------------------------------------------------------------------------ the API
def request_decision(model_name: str, decision: RequestedDecision, rollouts: RolloutRecords) -> RolloutState:
    """A person's promote or abort. An abort stops the candidate's traffic at once; the bake's next step
    deletes its endpoint. A promote is carried out by the next step (within PollIntervalSeconds)."""
    state = rollouts.get(model_name)
    if state is None or state.state is not RolloutPhase.BAKING:
        now = f"; the last rollout is {state.state.value}" if state else ""
        raise NoBakeInProgress(f"Model '{model_name}' has no candidate baking{now}.")
    if decision is RequestedDecision.ABORT:
        updated = ended(state, RolloutPhase.ABORTED, f"v{state.candidate_version} aborted by hand")
    else:
        updated = state.model_copy(update={"requested": decision, "updated_at": utc_now()})
    if not rollouts.replace(model_name, updated, expected=(RolloutPhase.BAKING,)):
        raise NoBakeInProgress(f"Model '{model_name}' has no candidate baking any more.")
    return updated


def abort_for_rollback(model_name: str, rollouts: RolloutRecords) -> RolloutState | None:
    """A rollback on demand during a bake aborts it (the live version is what is rolled back)."""
    state = rollouts.get(model_name)
    if state is None or state.state is not RolloutPhase.BAKING:
        return None
    reason = f"v{state.candidate_version} aborted: a rollback was requested during the bake"
    _end_routing(rollouts, model_name, state, RolloutPhase.ABORTED, reason)
    return state


# ------------------------------------------------------------------------------------------ the steps
def handle_step(
    event: DeploymentStatusEvent,
    handle_status: Callable[[DeploymentStatusEvent], StatusResult],
    dependencies: Callable[[], BakeDependencies],
) -> StatusResult:
    """The DeploymentStatus function's entry: a bake's steps here, every other step to `handle_status`
    (after which a promotion's end retires the candidate)."""
    if is_bake_step(event):
        return handle_bake_step(event, dependencies())
    result = handle_status(event)
    if event.deployment.rollout_phase == PROMOTION_PHASE:
        live = event.action == "succeeded" and result.status == DeploymentStatus.IN_SERVICE.value
        ended = event.action in ("smoke_failed", "failed", "timed_out", "error") or (
            event.action == "succeeded" and not live
        )
        if live or ended:
            deps = dependencies()
            deployment = deps.records.get_deployment(event.deployment.model_name, event.deployment.version)
            if deployment is not None:
                retire_candidate(deployment, deps, live=live)
    return result


def is_bake_step(event: DeploymentStatusEvent) -> bool:
    return event.action.startswith("bake_") or (
        event.deployment.rollout_phase == CANDIDATE_PHASE
        and event.action in ("smoke_failed", "failed", "timed_out", "error")
    )


def handle_bake_step(event: DeploymentStatusEvent, deps: BakeDependencies) -> StatusResult:
    target = event.deployment
    logger.append_keys(model=target.model_name, deployment_id=target.deployment_id, action=event.action)
    deployment = deps.records.get_deployment(target.model_name, target.version)
    if deployment is None or deployment.deployment_id != target.deployment_id:
        raise LookupError(f"no deployment {target.deployment_id} (version {target.version})")
    if deployment.status not in IN_FLIGHT:
        # bake_retire after a promotion, or a step of a bake that ended elsewhere (a replay, a newer
        # upload): the candidate's endpoint must not outlive it.
        _delete_candidate_endpoint(deployment, deps)
        return StatusResult(status=deployment.status.value, reason=deployment.reason)
    if event.action == "bake_start":
        result = _start(deployment, target, deps)
    elif event.action == "bake_judge":
        result = _judge(deployment, deps)
    elif event.action == "bake_promote":
        result = _promote(deployment, target, str((event.verdict or {}).get("reason") or ""), deps)
    elif event.action == "bake_switch":
        result = _switch_live(deployment, target, deps)
    elif event.action == "bake_end":
        verdict = event.verdict or {}
        result = _end(deployment, target, str(verdict.get("status")), str(verdict.get("reason") or ""), deps)
    else:  # the candidate's endpoint never got to bake: its smoke test, its creation or a step failed
        result = _end(deployment, target, "Failed", _candidate_failure(event), deps)
    logger.info("bake step recorded", extra={"status": result.status, "reason": result.reason})
    return result


def _candidate_failure(event: DeploymentStatusEvent) -> str:
    endpoint = event.endpoint or {}
    if event.action == "smoke_failed":
        why = (event.smoke or {}).get("reason") or "no reason"
        return f"smoke test failed: {why}; the live version kept serving"
    if event.action == "timed_out":
        return (
            f"candidate endpoint {event.deployment.endpoint_name} not InService after "
            f"{event.deployment.max_polls} polls (deploy timeout); "
            f"last status {endpoint.get('EndpointStatus')}"
        )
    if event.action == "failed":
        return f"candidate endpoint {event.deployment.endpoint_name} became {endpoint.get('EndpointStatus')}"
    error = event.error or {}
    return f"deploy state machine error {error.get('Error', 'unknown')}: {error.get('Cause', '')}".strip()


def _start(deployment: Deployment, target: ExecutionInput, deps: BakeDependencies) -> StatusResult:
    newer = _newer_upload(deployment, deps.records)
    if newer is not None:
        reason = f"superseded by version {newer.version} ({newer.deployment_id}) before its bake began"
        return _end(deployment, target, "Superseded", reason, deps)
    rollout = _rollout_of(deployment)
    model = deps.records.get_model(deployment.model_name)
    canary = rollout.canary_percent if isinstance(rollout, CanaryRollout) else None
    state = RolloutState(
        strategy=rollout.strategy,
        state=RolloutPhase.BAKING,
        candidate_version=deployment.version,
        candidate_deployment_id=deployment.deployment_id,
        candidate_endpoint_name=target.endpoint_name,
        live_version=model.live_version if model else None,
        canary_percent=canary,
        candidate_weight=canary or 0,
        mirror=isinstance(rollout, ShadowRollout),
        started_at=_iso(deps.clock()),
    )
    deps.rollouts.begin(deployment.model_name, state)
    return StatusResult(status=RolloutPhase.BAKING.value, reason=f"baking for {rollout.bake_seconds} s")


def _judge(deployment: Deployment, deps: BakeDependencies) -> StatusResult:
    state = deps.rollouts.get(deployment.model_name)
    if state is None or state.candidate_deployment_id != deployment.deployment_id:
        return StatusResult(status="Superseded", reason="another bake of this model began")
    if state.state is RolloutPhase.ABORTED:
        ended = "Superseded" if state.superseded_by is not None else RolloutPhase.ABORTED.value
        return StatusResult(status=ended, reason=state.reason)
    rollout = _rollout_of(deployment)
    now = deps.clock()
    started = datetime.fromisoformat(state.started_at)
    elapsed = (now - started).total_seconds()
    live_version = state.live_version or 0
    figures = read_figures(
        deps.cloudwatch,
        namespace=deps.namespace,
        model=deployment.model_name,
        versions=[live_version, deployment.version],
        started=started,
        now=now,
        with_agreement=isinstance(rollout, ShadowRollout),
    )
    live, candidate = figures[live_version], figures[deployment.version]
    if state.requested is RequestedDecision.PROMOTE:
        status, reason = Decision.PROMOTE.value, f"v{deployment.version} promoted by hand"
    else:
        verdict = judge(rollout, live, candidate, elapsed_s=elapsed)
        status, reason = verdict.decision.value, verdict.reason
        if (
            verdict.decision is Decision.KEEP_BAKING
            and elapsed >= rollout.bake_seconds + deps.deploy_timeout_s
        ):
            status = DeploymentStatus.TIMED_OUT.value
            reason = (
                f"no decision within bake_seconds {rollout.bake_seconds} plus DeployTimeoutSeconds "
                f"{deps.deploy_timeout_s}: {reason}"
            )
    _keep_figures(deps.rollouts, deployment.model_name, state, [live, candidate])
    return StatusResult(status=status, reason=reason)


def _promote(
    deployment: Deployment, target: ExecutionInput, reason: str, deps: BakeDependencies
) -> StatusResult:
    """The candidate answers every request from now on (the live endpoint switches next)."""
    state = deps.rollouts.get(deployment.model_name)
    if state is None or state.candidate_deployment_id != deployment.deployment_id:
        return _end(deployment, target, "Superseded", "another bake of this model began", deps)
    promoted = state.model_copy(
        update={
            "state": RolloutPhase.PROMOTED,
            "candidate_weight": 100,
            "mirror": False,
            "reason": reason,
            "requested": None,
            "updated_at": utc_now(),
        }
    )
    if not deps.rollouts.replace(deployment.model_name, promoted, expected=(RolloutPhase.BAKING,)):
        current = deps.rollouts.get(deployment.model_name)
        why = current.reason if current else None
        return _end(deployment, target, "Aborted", why or "the bake ended before its promotion", deps)
    return StatusResult(status=RolloutPhase.PROMOTED.value, reason=reason)


def _switch_live(deployment: Deployment, target: ExecutionInput, deps: BakeDependencies) -> StatusResult:
    """The live endpoint takes the candidate's config through the one switch of an endpoint there is."""
    state = deps.rollouts.get(deployment.model_name)
    if state is None or state.candidate_deployment_id != deployment.deployment_id:
        return _end(deployment, target, "Superseded", "another bake of this model began", deps)
    status = deps.rollout.promote(deployment)
    promotion = target.model_copy(
        update={
            "endpoint_name": deployment.endpoint_name,
            "status": "Queued" if status is DeploymentStatus.QUEUED else "Deploying",
            "rollout_phase": PROMOTION_PHASE,
        }
    )
    return StatusResult(status=status.value, reason=state.reason, promotion=promotion)


def _end(
    deployment: Deployment, target: ExecutionInput, outcome: str, reason: str, deps: BakeDependencies
) -> StatusResult:
    """The candidate is done with: its endpoint deleted, the rollout and the deployment say why."""
    phase, status = {
        Decision.ROLL_BACK.value: (RolloutPhase.ROLLED_BACK, DeploymentStatus.FAILED),
        "Failed": (RolloutPhase.ROLLED_BACK, DeploymentStatus.FAILED),
        DeploymentStatus.TIMED_OUT.value: (RolloutPhase.ABORTED, DeploymentStatus.TIMED_OUT),
        "Superseded": (RolloutPhase.ABORTED, DeploymentStatus.SUPERSEDED),
    }.get(outcome, (RolloutPhase.ABORTED, DeploymentStatus.FAILED))
    state = deps.rollouts.get(deployment.model_name)
    if state is not None and state.candidate_deployment_id == deployment.deployment_id:
        reason = reason or state.reason or outcome
        _end_routing(
            deps.rollouts, deployment.model_name, state, phase, reason, also_from=(RolloutPhase.ABORTED,)
        )
    _delete_candidate_endpoint(deployment, deps)
    deps.records.update_deployment(
        deployment.model_name, deployment.version, status, reason=reason, expected=IN_FLIGHT
    )
    # What the state machine chooses its end on: RolledBack fails the execution (CandidateRolledBack),
    # TimedOut too (DeploymentFailed); Aborted and Superseded end it well.
    if phase is RolloutPhase.ROLLED_BACK:
        return StatusResult(status=RolloutPhase.ROLLED_BACK.value, reason=reason)
    if status in (DeploymentStatus.TIMED_OUT, DeploymentStatus.SUPERSEDED):
        return StatusResult(status=status.value, reason=reason)
    return StatusResult(status=RolloutPhase.ABORTED.value, reason=reason)


def retire_candidate(deployment: Deployment, deps: BakeDependencies, *, live: bool) -> None:
    """The promotion is over: the live endpoint serves the candidate's config (live), or the switch
    failed (then the live version kept serving, and the candidate is rolled back)."""
    model_name = deployment.model_name
    state = deps.rollouts.get(model_name)
    if state is None or state.candidate_deployment_id != deployment.deployment_id:
        return
    if live:
        # The candidate's endpoint stays until warm containers stop routing to it (bake_retire).
        retired = state.model_copy(update={"candidate_weight": 0, "mirror": False, "updated_at": utc_now()})
        deps.rollouts.replace(model_name, retired, expected=(RolloutPhase.PROMOTED,))
        return
    reason = f"v{state.candidate_version} rolled back: the live endpoint could not switch to it"
    _end_routing(
        deps.rollouts, model_name, state, RolloutPhase.ROLLED_BACK, reason, also_from=(RolloutPhase.PROMOTED,)
    )
    _delete_candidate_endpoint(deployment, deps)


# ------------------------------------------------------------------------------------------ helpers
def _rollout_of(deployment: Deployment) -> CanaryRollout | ShadowRollout:
    rollout = deployment.config.rollout if deployment.config else None
    if rollout is None:
        raise ValueError(f"deployment {deployment.deployment_id} has no rollout to bake")
    return rollout


def _newer_upload(deployment: Deployment, records: DeploymentRecords) -> Deployment | None:
    for other in records.list_deployments(deployment.model_name, limit=50):
        if other.version > deployment.version and other.status in _SUPERSEDES and not other.is_rollback:
            return other
    return None


def _end_routing(
    rollouts: RolloutRecords,
    model_name: str,
    state: RolloutState,
    phase: RolloutPhase,
    reason: str,
    also_from: tuple[RolloutPhase, ...] = (),
) -> bool:
    """End the routing to the candidate, from Baking (or the `also_from` phases)."""
    return rollouts.replace(
        model_name, ended(state, phase, reason), expected=(RolloutPhase.BAKING, *also_from)
    )


def _keep_figures(
    rollouts: RolloutRecords, model_name: str, state: RolloutState, figures: list[VersionFigures]
) -> None:
    rollouts.replace(
        model_name,
        state.model_copy(update={"figures": figures, "updated_at": utc_now()}),
        expected=(RolloutPhase.BAKING,),
    )


def _delete_candidate_endpoint(deployment: Deployment, deps: BakeDependencies) -> None:
    # Named from the deployment, never from an execution's input: that names the live endpoint once
    # a promotion is under way, and the live endpoint is never deleted here.
    deps.rollout.drop_candidate(deployment)


def _iso(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat(timespec="milliseconds")
