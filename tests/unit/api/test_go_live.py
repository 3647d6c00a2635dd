"""A deployment goes live in one write: the API never sees it InService with the model not yet live.

The reliability suite (reliability/RESULTS.md) saw a client that waited for its deployment to read
InService be answered 503 ModelNotInService: the status step wrote the deployment, then the model item.
`DeploymentRecords.go_live` writes both in one TransactWriteItems, with each write's own condition.
"""

from __future__ import annotations

from typing import Any

import pytest
from modeldrop.api.logic import is_servable
from modeldrop.deployments_table import DeploymentRecords, GoLive
from modeldrop.records import Deployment, DeploymentStatus
from modeldrop.rollout import IN_FLIGHT

from tests.unit.api.support import pipeline_deployment


def _deployment(records: DeploymentRecords) -> Deployment:
    """A new version of iris, in flight (Deploying), with its model item as OnUpload leaves it."""
    deployment = pipeline_deployment(records.next_version("iris"), DeploymentStatus.DEPLOYING)
    records.put_deployment(deployment)
    records.touch_model(
        "iris", "modeldrop-iris", status="Creating", last_deployment_id=deployment.deployment_id
    )
    return deployment


@pytest.fixture
def records(table: Any) -> DeploymentRecords:
    return DeploymentRecords(table)


def test_every_write_leaves_an_in_service_deployment_servable(table: Any, records: DeploymentRecords) -> None:
    # Given a deployment in flight and a check of the table after every write the records make
    deployment = _deployment(records)
    observed: list[tuple[DeploymentStatus, bool]] = []

    def after_write(**_: Any) -> None:
        current = records.get_deployment("iris", deployment.version)
        model = records.get_model("iris")
        assert current is not None and model is not None
        observed.append((current.status, is_servable(model) and model.live_version == deployment.version))

    events = table.meta.client.meta.events
    for operation in ("UpdateItem", "PutItem", "TransactWriteItems"):
        events.register(f"after-call.dynamodb.{operation}", after_write)
    # When it goes live
    outcome = records.go_live(deployment, expected=IN_FLIGHT)
    # Then no write left it InService while the model was not yet servable on it
    assert outcome is GoLive.LIVE
    assert observed == [(DeploymentStatus.IN_SERVICE, True)]


def test_a_deployment_no_longer_in_flight_writes_nothing(records: DeploymentRecords) -> None:
    deployment = _deployment(records)
    records.update_deployment("iris", deployment.version, DeploymentStatus.SUPERSEDED)
    outcome = records.go_live(deployment, expected=IN_FLIGHT)
    assert outcome is GoLive.NOT_IN_FLIGHT
    current = records.get_deployment("iris", deployment.version)
    model = records.get_model("iris")
    assert current is not None and current.status is DeploymentStatus.SUPERSEDED
    assert model is not None and model.live_version is None and model.status == "Creating"


def test_a_newer_live_version_stays_live(records: DeploymentRecords) -> None:
    # Given v1 in flight, and v2 live before v1's status step runs
    older = _deployment(records)
    newer = _deployment(records)
    assert records.go_live(newer, expected=IN_FLIGHT) is GoLive.LIVE
    # When v1 reaches InService late
    outcome = records.go_live(older, expected=IN_FLIGHT)
    # Then v1 is recorded InService and the model still serves v2
    assert outcome is GoLive.NEWER_LIVE
    current = records.get_deployment("iris", older.version)
    model = records.get_model("iris")
    assert current is not None and current.status is DeploymentStatus.IN_SERVICE
    assert model is not None and model.live_version == newer.version
