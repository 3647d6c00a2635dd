"""The pipeline functions' settings, parsed from the environment the template gives them."""

from __future__ import annotations

import pytest
from modeldrop.settings import DeploymentStatusSettings, OnUploadSettings
from pydantic import ValidationError

BASE = {
    "DEPLOYMENTS_TABLE": "deployments",
    "IDEMPOTENCY_TABLE": "idempotency",
    "STATE_MACHINE_ARN": "arn:aws:states:us-east-1:123456789012:stateMachine:deploy",
    "SAGEMAKER_ROLE_ARN": "arn:aws:iam::123456789012:role/sagemaker",
    "PATH": "/usr/bin",  # Lambda's environment holds much more than our variables
}


def test_on_upload_settings_from_strings() -> None:
    # Given the environment as Lambda passes it (all strings)
    env = {
        **BASE,
        "DEFAULT_MEMORY_MB": "3072",
        "MAX_UNCOMPRESSED_MB": "10",
        "MAX_TARBALL_MEMBERS": "7",
        "POLL_INTERVAL_SECONDS": "30",
        "DEPLOY_TIMEOUT_SECONDS": "1801",
    }

    # When parsed
    settings = OnUploadSettings.load(env)

    # Then numbers are numbers, limits are in bytes, and the poll budget rounds up
    assert settings.default_memory_mb == 3072
    limits = settings.tarball_limits()
    assert (limits.max_members, limits.max_uncompressed_bytes) == (7, 10 * 2**20)
    assert settings.max_polls == 61
    assert settings.config_defaults().memory_mb == 3072


def test_memory_must_be_a_serverless_size() -> None:
    # Given a memory size SageMaker Serverless does not offer / When parsed / Then the error says which
    with pytest.raises(ValidationError, match="1024, 2048, 3072, 4096, 5120, 6144"):
        OnUploadSettings.load({**BASE, "DEFAULT_MEMORY_MB": "1500"})


def test_missing_variable_is_named() -> None:
    # Given no state machine ARN / When parsed / Then the error names the variable
    env = {key: value for key, value in BASE.items() if key != "STATE_MACHINE_ARN"}
    with pytest.raises(ValidationError, match="STATE_MACHINE_ARN"):
        OnUploadSettings.load(env)


def test_deployment_status_settings() -> None:
    # Given the status function's environment / When parsed / Then KEEP_VERSIONS is read
    assert DeploymentStatusSettings.load({**BASE, "KEEP_VERSIONS": "5"}).keep_versions == 5
    with pytest.raises(ValidationError, match="KEEP_VERSIONS"):
        DeploymentStatusSettings.load({**BASE, "KEEP_VERSIONS": "0"})
