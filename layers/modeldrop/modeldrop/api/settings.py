"""The Api function's configuration, parsed from its environment (set by template.yaml)."""

from __future__ import annotations

import os
from collections.abc import Mapping

from pydantic import BaseModel, ConfigDict, Field


class ApiSettings(BaseModel):
    model_config = ConfigDict(frozen=True)

    deployments_table: str = Field(min_length=1)
    # API Gateway gives up on an integration after 29 s; answering 504 ourselves a little earlier
    # keeps the error in our JSON shape and frees the Lambda.
    invoke_read_timeout_s: float = Field(default=25.0, gt=0)
    invoke_connect_timeout_s: float = Field(default=3.0, gt=0)

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> ApiSettings:
        env = os.environ if environ is None else environ
        values: dict[str, str] = {"deployments_table": env.get("DEPLOYMENTS_TABLE", "")}
        if "INVOKE_READ_TIMEOUT_SECONDS" in env:
            values["invoke_read_timeout_s"] = env["INVOKE_READ_TIMEOUT_SECONDS"]
        if "INVOKE_CONNECT_TIMEOUT_SECONDS" in env:
            values["invoke_connect_timeout_s"] = env["INVOKE_CONNECT_TIMEOUT_SECONDS"]
        return cls.model_validate(values)
