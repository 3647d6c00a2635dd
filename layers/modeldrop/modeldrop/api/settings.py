"""The Api function's configuration, parsed from its environment (set by template.yaml)."""

from __future__ import annotations

import math
import os
from collections.abc import Mapping

from pydantic import BaseModel, ConfigDict, Field

from modeldrop.api.record_cache import DEFAULT_TTL_S


class ApiSettings(BaseModel):
    model_config = ConfigDict(frozen=True)

    deployments_table: str = Field(min_length=1)
    # API Gateway gives up on an integration after 29 s; answering 504 ourselves a little earlier
    # keeps the error in our JSON shape and frees the Lambda.
    invoke_read_timeout_s: float = Field(default=25.0, gt=0)
    invoke_connect_timeout_s: float = Field(default=3.0, gt=0)
    # How long a warm container may reuse a servable model's record to invoke it (0: read it every time).
    record_cache_ttl_s: float = Field(default=DEFAULT_TTL_S, ge=0)
    # POST /models/{name}/rollback starts the deploy state machine, bounded like an upload's deployment.
    state_machine_arn: str = ""
    poll_interval_seconds: int = Field(default=30, ge=1)
    deploy_timeout_seconds: int = Field(default=1800, ge=1)
    # Where a shadow bake's copies of requests go (InvocationType=Event); "" sends none.
    shadow_function_name: str = ""

    @property
    def max_polls(self) -> int:
        return max(1, math.ceil(self.deploy_timeout_seconds / self.poll_interval_seconds))

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> ApiSettings:
        env = os.environ if environ is None else environ
        values: dict[str, str] = {"deployments_table": env.get("DEPLOYMENTS_TABLE", "")}
        if "INVOKE_READ_TIMEOUT_SECONDS" in env:
            values["invoke_read_timeout_s"] = env["INVOKE_READ_TIMEOUT_SECONDS"]
        if "INVOKE_CONNECT_TIMEOUT_SECONDS" in env:
            values["invoke_connect_timeout_s"] = env["INVOKE_CONNECT_TIMEOUT_SECONDS"]
        optional = {
            "STATE_MACHINE_ARN": "state_machine_arn",
            "POLL_INTERVAL_SECONDS": "poll_interval_seconds",
            "DEPLOY_TIMEOUT_SECONDS": "deploy_timeout_seconds",
            "MODEL_RECORD_CACHE_TTL_SECONDS": "record_cache_ttl_s",
            "SHADOW_FUNCTION_NAME": "shadow_function_name",
        }
        values.update({field: env[name] for name, field in optional.items() if name in env})
        return cls.model_validate(values)
