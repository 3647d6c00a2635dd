"""What the Api function reads of the DeploymentsTable, as a protocol the routes depend on.

`modeldrop.deployments_table.DeploymentRecords` (the table's one adapter) implements it; tests and
wrappers (a cache, say) can stand in for it.
"""

from __future__ import annotations

from typing import Protocol

from modeldrop.records import Deployment, ModelItem


class ModelRecordsReader(Protocol):
    def get_model(self, model_name: str) -> ModelItem | None: ...

    def list_deployments(self, model_name: str, limit: int = 20) -> list[Deployment]:
        """The newest `limit` deployments of a model, newest first."""
        ...

    def all_models(self) -> list[tuple[ModelItem | None, Deployment | None]]:
        """Every model known to the table with its newest deployment, sorted by name."""
        ...
