"""The DeploymentsTable adapter: the one reader and writer of its items (the records are
modeldrop.records).

pk=MODEL#<name>  sk=MODEL             the model: endpoint, its status, the live deployment
pk=MODEL#<name>  sk=DEPLOY#<000042>   one deployment (upload), newest last in sort order
pk=MODEL#<name>  sk=COUNTER           the version counter (atomic ADD)
pk=UPLOAD#REJECTED sk=<time>#<key>    uploads whose key names no valid model
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from enum import StrEnum
from typing import Any

from boto3.dynamodb.conditions import Attr, Key
from pydantic.alias_generators import to_camel

from modeldrop.records import Deployment, DeploymentStatus, ModelItem, utc_now


class UnknownDeployment(LookupError):
    """A state machine step names a deployment the table does not hold."""


MODEL_SK = "MODEL"
COUNTER_SK = "COUNTER"
DEPLOY_SK_PREFIX = "DEPLOY#"
REJECTED_KEYS_PK = "UPLOAD#REJECTED"
# Deployments that will never serve again expire; the live one and its predecessors stay.
FINISHED_RECORD_TTL = timedelta(days=90)


def model_pk(name: str) -> str:
    return f"MODEL#{name}"


def deploy_sk(version: int) -> str:
    return f"{DEPLOY_SK_PREFIX}{version:06d}"


def _ttl_from_now() -> int:
    return int((datetime.now(UTC) + FINISHED_RECORD_TTL).timestamp())


def plain_numbers(value: Any) -> Any:
    """boto3's resource layer reads every number as Decimal, nested ones too; JSON and pydantic's
    strict int fields want int (or float)."""
    if isinstance(value, Decimal):
        return int(value) if value == value.to_integral_value() else float(value)
    if isinstance(value, dict):
        return {key: plain_numbers(item) for key, item in value.items()}
    if isinstance(value, list):
        return [plain_numbers(item) for item in value]
    return value


def _deployment(item: dict[str, Any]) -> Deployment:
    return Deployment.model_validate(plain_numbers(item))


def _model(item: dict[str, Any]) -> ModelItem:
    return ModelItem.model_validate(plain_numbers(item))


# The computed SageMaker model, config and S3 names are stored once the deployment has a config (it was
# not rejected before that): an item names only what may exist.
_SAGEMAKER_NAMES = {"sagemakerModelName", "endpointConfigName", "modelDataKey"}


def deployment_item(deployment: Deployment) -> dict[str, Any]:
    """The item of a deployment: its record camelCase (None attributes left out), with its keys."""
    item = deployment.model_dump(by_alias=True, mode="json", exclude_none=True)
    if deployment.config is None:
        item = {name: value for name, value in item.items() if name not in _SAGEMAKER_NAMES}
    item["pk"] = model_pk(deployment.model_name)
    item["sk"] = deploy_sk(deployment.version)
    item["reason"] = deployment.reason  # always present, null when none (H3 reads it)
    return item


class GoLive(StrEnum):
    """What `DeploymentRecords.go_live` did."""

    LIVE = "live"  # the deployment is InService and the model item points at it
    NEWER_LIVE = "newer-live"  # InService, but a newer version was live already: the model item stays
    NOT_IN_FLIGHT = "not-in-flight"  # the deployment was no longer in an expected status: nothing written


_LIVE_UPDATE = (
    "SET modelName = :name, endpointName = :endpoint, #status = :status, liveDeploymentId = :id, "
    "liveVersion = :version, liveObjectVersion = :object, updatedAt = :now"
)


def _live_values(deployment: Deployment, now: str) -> dict[str, Any]:
    return {
        ":name": deployment.model_name,
        ":endpoint": deployment.endpoint_name,
        ":status": "InService",
        ":id": deployment.deployment_id,
        ":version": deployment.version,
        ":object": deployment.object_version,
        ":now": now,
    }


class DeploymentRecords:
    """Reads and writes the DeploymentsTable through a boto3 Table resource."""

    def __init__(self, table: Any) -> None:
        self._table = table

    # ---------------------------------------------------------------- versions and deployments
    def next_version(self, model_name: str) -> int:
        """1, 2, 3 … per model; an atomic counter, so concurrent uploads never share a version."""
        response = self._table.update_item(
            Key={"pk": model_pk(model_name), "sk": COUNTER_SK},
            UpdateExpression="ADD lastVersion :one",
            ExpressionAttributeValues={":one": 1},
            ReturnValues="UPDATED_NEW",
        )
        return int(response["Attributes"]["lastVersion"])

    def put_deployment(self, deployment: Deployment) -> None:
        """Write a new deployment item; a version is written once (conditional put)."""
        item = deployment_item(deployment)
        if deployment.status.expires and "ttl" not in item:
            item["ttl"] = _ttl_from_now()
        self._table.put_item(
            Item=item,
            ConditionExpression=Attr("pk").not_exists(),
        )

    def get_deployment(self, model_name: str, version: int) -> Deployment | None:
        item = self._table.get_item(
            Key={"pk": model_pk(model_name), "sk": deploy_sk(version)}, ConsistentRead=True
        ).get("Item")
        return _deployment(item) if item else None

    def deployment_followed(self, model_name: str, version: int, deployment_id: str) -> Deployment:
        """The deployment a state machine step is about; UnknownDeployment when the table has no such
        version, or that version is another deployment (the payload is stale or made up)."""
        deployment = self.get_deployment(model_name, version)
        if deployment is None or deployment.deployment_id != deployment_id:
            raise UnknownDeployment(f"no deployment {deployment_id} (version {version})")
        return deployment

    def update_deployment(
        self,
        model_name: str,
        version: int,
        status: DeploymentStatus,
        *,
        reason: str | None = None,
        expected: tuple[DeploymentStatus, ...] = (),
        **fields: Any,
    ) -> bool:
        """Set the status (and reason, and any other camelCase-able fields).

        With `expected`, only when the current status is one of them: returns False otherwise, so a
        late or duplicate state-machine step cannot overwrite a newer outcome.
        """
        values: dict[str, Any] = {"status": status.value, "reason": reason, "updatedAt": utc_now()}
        if status.expires:
            values["ttl"] = _ttl_from_now()
        values.update({to_camel(name): value for name, value in fields.items()})
        # Placeholders "#u"/":u": boto3's condition builder uses "#n"/":v" for the ConditionExpression.
        names = {f"#u{index}": name for index, name in enumerate(values)}
        assignments = ", ".join(f"#u{index} = :u{index}" for index in range(len(values)))
        attribute_values = {f":u{index}": value for index, value in enumerate(values.values())}
        kwargs: dict[str, Any] = {
            "Key": {"pk": model_pk(model_name), "sk": deploy_sk(version)},
            "UpdateExpression": f"SET {assignments}",
            "ExpressionAttributeNames": names,
            "ExpressionAttributeValues": attribute_values,
        }
        condition: Any = Attr("pk").exists()
        if expected:
            condition = condition & Attr("status").is_in([state.value for state in expected])
        kwargs["ConditionExpression"] = condition
        try:
            self._table.update_item(**kwargs)
        except self._table.meta.client.exceptions.ConditionalCheckFailedException:
            return False
        return True

    def list_deployments(self, model_name: str, limit: int = 20) -> list[Deployment]:
        """The newest `limit` deployments of a model, newest first."""
        response = self._table.query(
            KeyConditionExpression=Key("pk").eq(model_pk(model_name))
            & Key("sk").begins_with(DEPLOY_SK_PREFIX),
            ScanIndexForward=False,
            Limit=limit,
            ConsistentRead=True,
        )
        return [_deployment(item) for item in response.get("Items", [])]

    def all_deployments(self, model_name: str) -> list[Deployment]:
        """Every deployment of a model, oldest first."""
        kwargs: dict[str, Any] = {
            "KeyConditionExpression": Key("pk").eq(model_pk(model_name))
            & Key("sk").begins_with(DEPLOY_SK_PREFIX),
            "ConsistentRead": True,
        }
        deployments: list[Deployment] = []
        while True:
            page = self._table.query(**kwargs)
            deployments.extend(_deployment(item) for item in page.get("Items", []))
            if "LastEvaluatedKey" not in page:
                return deployments
            kwargs["ExclusiveStartKey"] = page["LastEvaluatedKey"]

    # ---------------------------------------------------------------- models
    def get_model(self, model_name: str) -> ModelItem | None:
        item = self._table.get_item(
            Key={"pk": model_pk(model_name), "sk": MODEL_SK}, ConsistentRead=True
        ).get("Item")
        return _model(item) if item else None

    def all_models(self) -> list[tuple[ModelItem | None, Deployment | None]]:
        """Every model the table knows, with its newest deployment, sorted by name.

        One paginated scan instead of a query per model: GET /models costs one pass over the table
        whatever the number of models. A model whose first upload was rejected has deployment items
        but no model item; it is listed too (model None), so its reason can be seen.
        """
        models: dict[str, ModelItem] = {}
        newest: dict[str, tuple[str, dict[str, Any]]] = {}
        for item in self._scan():
            pk, sk = str(item["pk"]), str(item["sk"])
            if not pk.startswith(model_pk("")):
                continue
            if sk == MODEL_SK:
                models[pk] = _model(item)
            elif sk.startswith(DEPLOY_SK_PREFIX) and (pk not in newest or sk > newest[pk][0]):
                newest[pk] = (sk, item)
        return [
            (models.get(pk), _deployment(newest[pk][1]) if pk in newest else None)
            for pk in sorted(set(models) | set(newest))
        ]

    def deployments_in(self, statuses: tuple[DeploymentStatus, ...]) -> list[Deployment]:
        """Every deployment (of any model) whose status is one of `statuses`: one paginated scan."""
        wanted = Attr("sk").begins_with(DEPLOY_SK_PREFIX) & Attr("status").is_in([s.value for s in statuses])
        return [_deployment(item) for item in self._scan(FilterExpression=wanted, ConsistentRead=True)]

    def _scan(self, **kwargs: Any) -> Iterator[dict[str, Any]]:
        while True:
            page = self._table.scan(**kwargs)
            yield from page.get("Items", [])
            if "LastEvaluatedKey" not in page:
                return
            kwargs["ExclusiveStartKey"] = page["LastEvaluatedKey"]

    def touch_model(
        self, model_name: str, endpoint_name: str, *, status: str, last_deployment_id: str
    ) -> None:
        """Create or update the model item when a deployment reaches SageMaker (live fields untouched)."""
        self._table.update_item(
            Key={"pk": model_pk(model_name), "sk": MODEL_SK},
            UpdateExpression=(
                "SET modelName = :name, endpointName = :endpoint, #status = :status, "
                "lastDeploymentId = :last, updatedAt = :now"
            ),
            ExpressionAttributeNames={"#status": "status"},
            ExpressionAttributeValues={
                ":name": model_name,
                ":endpoint": endpoint_name,
                ":status": status,
                ":last": last_deployment_id,
                ":now": utc_now(),
            },
        )

    def set_model_status(self, model_name: str, status: str) -> None:
        self._table.update_item(
            Key={"pk": model_pk(model_name), "sk": MODEL_SK},
            UpdateExpression="SET #status = :status, updatedAt = :now",
            ConditionExpression=Attr("pk").exists(),
            ExpressionAttributeNames={"#status": "status"},
            ExpressionAttributeValues={":status": status, ":now": utc_now()},
        )

    def go_live(self, deployment: Deployment, expected: tuple[DeploymentStatus, ...]) -> GoLive:
        """Record the deployment InService and point the model item at it, in one transaction.

        Two separate writes left a window in which the deployment read InService while the model item
        still said it was being created, so a client that waited for InService was answered 503. The
        deployment's condition is `expected` (a late or duplicate step must not overwrite a newer
        outcome); the model item's is that no newer version is live.
        """
        now = utc_now()
        deployment_update = {
            "TableName": self._table.name,
            "Key": {"pk": model_pk(deployment.model_name), "sk": deploy_sk(deployment.version)},
            "UpdateExpression": "SET #status = :status, #reason = :reason, updatedAt = :now",
            "ConditionExpression": "attribute_exists(pk) AND #status IN ("
            + ", ".join(f":expected{index}" for index in range(len(expected)))
            + ")",
            "ExpressionAttributeNames": {"#status": "status", "#reason": "reason"},
            "ExpressionAttributeValues": {
                ":status": DeploymentStatus.IN_SERVICE.value,
                ":reason": None,
                ":now": now,
            }
            | {f":expected{index}": state.value for index, state in enumerate(expected)},
        }
        model_update = {
            "TableName": self._table.name,
            "Key": {"pk": model_pk(deployment.model_name), "sk": MODEL_SK},
            "UpdateExpression": _LIVE_UPDATE,
            "ConditionExpression": "attribute_not_exists(liveVersion) OR liveVersion < :version",
            "ExpressionAttributeNames": {"#status": "status"},
            "ExpressionAttributeValues": _live_values(deployment, now),
        }
        # The Table resource's client serializes plain values (boto3's TransformationInjector) but not
        # condition builders inside TransactItems: the conditions are written as expressions.
        client = self._table.meta.client
        try:
            client.transact_write_items(
                TransactItems=[{"Update": deployment_update}, {"Update": model_update}]
            )
        except client.exceptions.TransactionCanceledException as error:
            codes = [reason.get("Code") for reason in error.response.get("CancellationReasons", [])]
            if codes and codes[0] == "ConditionalCheckFailed":
                return GoLive.NOT_IN_FLIGHT
            if len(codes) > 1 and codes[1] == "ConditionalCheckFailed":
                # A newer version is live already: this deployment is InService, the model item stays.
                if self.update_deployment(
                    deployment.model_name, deployment.version, DeploymentStatus.IN_SERVICE, expected=expected
                ):
                    return GoLive.NEWER_LIVE
                return GoLive.NOT_IN_FLIGHT
            raise
        return GoLive.LIVE

    # ---------------------------------------------------------------- uploads that name no model
    def record_rejected_key(self, bucket: str, key: str, object_version: str | None, reason: str) -> None:
        now = utc_now()
        self._table.put_item(
            Item={
                "pk": REJECTED_KEYS_PK,
                "sk": f"{now}#{key}#{object_version}",
                "bucket": bucket,
                "key": key,
                "objectVersion": object_version,
                "status": DeploymentStatus.REJECTED.value,
                "reason": reason,
                "createdAt": now,
                "ttl": _ttl_from_now(),
            }
        )

    def rejected_keys(self) -> list[dict[str, Any]]:
        response = self._table.query(
            KeyConditionExpression=Key("pk").eq(REJECTED_KEYS_PK), ConsistentRead=True
        )
        return [plain_numbers(item) for item in response.get("Items", [])]
