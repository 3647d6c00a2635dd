"""Reads the deployment records the pipeline writes to the DeploymentsTable (read-only adapter).

Key schema (modeldrop.records): model item pk=`MODEL#<name>`, sk=`MODEL`; deployment
items pk=`MODEL#<name>`, sk=`DEPLOY#<version, 6 digits>`, so a descending query on the partition gives
the newest deployments first. Unlike the pipeline's `DeploymentRecords`, this reader also lists models
whose uploads never reached SageMaker (deployment items but no model item), with their reasons.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any, Protocol

from boto3.dynamodb.conditions import Key

from modeldrop.api.models import DeploymentRecord, ModelRecord
from modeldrop.records import DEPLOY_SK_PREFIX, MODEL_SK, model_pk


class ModelRecordsReader(Protocol):
    def get_model(self, name: str) -> ModelRecord | None: ...

    def recent_deployments(self, name: str, limit: int) -> list[DeploymentRecord]: ...

    def all_models(self) -> list[tuple[ModelRecord | None, DeploymentRecord | None]]:
        """Every model known to the table with its newest deployment, sorted by name."""
        ...


class DynamoDBModelRecords:
    """`ModelRecordsReader` on a boto3 DynamoDB Table resource."""

    def __init__(self, table: Any) -> None:
        self._table = table

    def get_model(self, name: str) -> ModelRecord | None:
        item = self._table.get_item(Key={"pk": model_pk(name), "sk": MODEL_SK}, ConsistentRead=True).get(
            "Item"
        )
        return ModelRecord.model_validate(item) if item else None

    def recent_deployments(self, name: str, limit: int) -> list[DeploymentRecord]:
        response = self._table.query(
            KeyConditionExpression=Key("pk").eq(model_pk(name)) & Key("sk").begins_with(DEPLOY_SK_PREFIX),
            ScanIndexForward=False,
            Limit=limit,
        )
        return [DeploymentRecord.model_validate(item) for item in response.get("Items", [])]

    def all_models(self) -> list[tuple[ModelRecord | None, DeploymentRecord | None]]:
        # One paginated scan instead of a query per model: GET /models costs one pass over the
        # table whatever the number of models. A model whose first upload was rejected has
        # deployment items but no model item; it is listed too, so its reason can be seen.
        models: dict[str, ModelRecord] = {}
        newest: dict[str, tuple[str, dict[str, Any]]] = {}
        for item in self._scan():
            pk, sk = str(item["pk"]), str(item["sk"])
            if not pk.startswith(model_pk("")):
                continue
            if sk == MODEL_SK:
                models[pk] = ModelRecord.model_validate(item)
            elif sk.startswith(DEPLOY_SK_PREFIX) and (pk not in newest or sk > newest[pk][0]):
                newest[pk] = (sk, item)
        listed = []
        for pk in sorted(set(models) | set(newest)):
            deployment = DeploymentRecord.model_validate(newest[pk][1]) if pk in newest else None
            listed.append((models.get(pk), deployment))
        return listed

    def _scan(self) -> Iterator[dict[str, Any]]:
        kwargs: dict[str, Any] = {}
        while True:
            page = self._table.scan(**kwargs)
            yield from page.get("Items", [])
            if "LastEvaluatedKey" not in page:
                return
            kwargs["ExclusiveStartKey"] = page["LastEvaluatedKey"]
