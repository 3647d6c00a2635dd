"""The rollout attribute of a model's item (pk=MODEL#<name>, sk=MODEL): the bake of a candidate version.

The Api function reads it with the model item (one GetItem, the record cache keeps both), so routing
never costs a second read; the bake's steps and the API's promote/abort write it, each write
conditional on the candidate it is about, so a late step of an old bake cannot overwrite a newer one.
"""

from __future__ import annotations

import json
from decimal import Decimal
from enum import StrEnum
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field
from pydantic.alias_generators import to_camel

from modeldrop.deployments_table import MODEL_SK, model_pk, plain_numbers
from modeldrop.guardrails.judge import VersionFigures
from modeldrop.records import utc_now

ROLLOUT_ATTRIBUTE = "rollout"


class RolloutPhase(StrEnum):
    BAKING = "Baking"
    PROMOTED = "Promoted"
    ROLLED_BACK = "RolledBack"
    ABORTED = "Aborted"


class RequestedDecision(StrEnum):
    """A person's decision (POST /models/{name}/promote or /abort), carried out by the bake's next step."""

    PROMOTE = "promote"
    ABORT = "abort"


class RolloutState(BaseModel):
    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, extra="ignore", frozen=True)

    strategy: Literal["canary", "shadow"]
    state: RolloutPhase
    candidate_version: int
    candidate_deployment_id: str
    candidate_endpoint_name: str
    live_version: int | None = None
    canary_percent: float | None = None
    # The share of requests the candidate answers now: canary_percent while a canary bakes, 100 once a
    # promoted candidate waits for the live endpoint to switch to its config, else 0.
    candidate_weight: float = 0
    # Shadow while baking: a copy of each request goes to the candidate.
    mirror: bool = False
    started_at: str
    updated_at: str = Field(default_factory=utc_now)
    reason: str | None = None
    requested: RequestedDecision | None = None
    # Aborted because a newer upload came during the bake.
    superseded_by: int | None = None
    # The figures of the last judgement, live version first.
    figures: list[VersionFigures] = Field(default_factory=list)

    @property
    def active(self) -> bool:
        """The candidate endpoint exists and may be answering (baking, or promoted and not yet switched)."""
        return self.state is RolloutPhase.BAKING or self.candidate_weight > 0

    def to_attribute(self) -> dict[str, Any]:
        # DynamoDB takes Decimal, not float: through JSON text, floats parsed as Decimal.
        text = self.model_dump_json(by_alias=True, exclude_none=True)
        value: dict[str, Any] = json.loads(text, parse_float=Decimal)
        return value

    @classmethod
    def from_attribute(cls, value: dict[str, Any]) -> RolloutState:
        return cls.model_validate(plain_numbers(value))


class RolloutRecords:
    """Reads and writes the rollout attribute through the DeploymentsTable's boto3 Table resource."""

    def __init__(self, table: Any) -> None:
        self._table = table

    def get(self, model_name: str) -> RolloutState | None:
        item = self._table.get_item(
            Key={"pk": model_pk(model_name), "sk": MODEL_SK},
            ConsistentRead=True,
            ProjectionExpression="#r",
            ExpressionAttributeNames={"#r": ROLLOUT_ATTRIBUTE},
        ).get("Item")
        if not item or ROLLOUT_ATTRIBUTE not in item:
            return None
        return RolloutState.from_attribute(item[ROLLOUT_ATTRIBUTE])

    def begin(self, model_name: str, state: RolloutState) -> None:
        """Start a bake (the model item exists: a candidate always has a live version beside it)."""
        self._table.update_item(
            Key={"pk": model_pk(model_name), "sk": MODEL_SK},
            UpdateExpression="SET #r = :r",
            ConditionExpression="attribute_exists(pk)",
            ExpressionAttributeNames={"#r": ROLLOUT_ATTRIBUTE},
            ExpressionAttributeValues={":r": state.to_attribute()},
        )

    def replace(self, model_name: str, state: RolloutState, *, expected: tuple[RolloutPhase, ...]) -> bool:
        """Write `state` if the stored rollout is about the same candidate and in an `expected` phase."""
        phases = {f":p{index}": phase.value for index, phase in enumerate(expected)}
        try:
            self._table.update_item(
                Key={"pk": model_pk(model_name), "sk": MODEL_SK},
                UpdateExpression="SET #r = :r",
                ConditionExpression=f"#r.#id = :id AND #r.#state IN ({', '.join(phases)})",
                ExpressionAttributeNames={
                    "#r": ROLLOUT_ATTRIBUTE,
                    "#id": "candidateDeploymentId",
                    "#state": "state",
                },
                ExpressionAttributeValues={":r": state.to_attribute(), ":id": state.candidate_deployment_id}
                | phases,
            )
        except self._table.meta.client.exceptions.ConditionalCheckFailedException:
            return False
        return True
