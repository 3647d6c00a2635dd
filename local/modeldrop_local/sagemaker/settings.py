"""Settings of one local SageMaker process (also read by the edge that mounts its WSGI app)."""

from __future__ import annotations

from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field

# SageMaker Serverless limits (InvokeEndpoint): 4 MB of payload, 60 s per invocation.
SERVERLESS_MAX_PAYLOAD_BYTES = 4 * 1024 * 1024
SERVERLESS_INVOCATION_TIMEOUT_S = 60.0


class LocalSageMakerSettings(BaseModel):
    model_config = ConfigDict(frozen=True)

    state_dir: Path
    s3_endpoint_url: str | None = None  # where ModelDataUrl is downloaded from (moto, the edge, ...)
    region: str = "us-east-1"
    account_id: str = Field(default="123456789012", pattern=r"^[0-9]{12}$")
    idle_timeout_s: float = Field(default=300.0, gt=0)  # an idle on-demand worker is stopped after this
    host: str = "127.0.0.1"
    port: int = Field(default=8089, ge=0, le=65535)
    invocation_timeout_s: float = Field(default=SERVERLESS_INVOCATION_TIMEOUT_S, gt=0)
    max_payload_bytes: int = Field(default=SERVERLESS_MAX_PAYLOAD_BYTES, gt=0)
    startup_timeout_s: float = Field(default=180.0, gt=0)
    max_endpoints: int = Field(default=50, ge=1)  # the account quota: ResourceLimitExceeded beyond it
    # When set, endpoint logs are also shipped to CloudWatch Logs there (/aws/sagemaker/Endpoints/<name>).
    cloudwatch_logs_endpoint_url: str | None = None
    log_ship_interval_s: float = Field(default=1.0, gt=0)

    @property
    def reaper_interval_s(self) -> float:
        return max(0.05, min(1.0, self.idle_timeout_s / 4))
