"""One local cloud per e2e module, running the real template.yaml (stack "modeldrop", 1 s polls).

The pipeline tests reach the stack only through its Outputs, so they also run against a stack deployed on
AWS: `AWS_SAM_STACK_NAME=modeldrop pytest tests/e2e/test_pipeline.py` (credentials in the environment).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from modeldrop_local.cloud import LocalCloud
from modeldrop_local.stack_client import StackClient

from tests.utils import cloud_on_free_ports

# The sample events in events/ name the bucket of a stack called "modeldrop": use that name locally too.
STACK_NAME = "modeldrop"


@pytest.fixture(scope="module")
def cloud(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalCloud]:
    logging.getLogger("werkzeug").setLevel(logging.WARNING)
    local_cloud = cloud_on_free_ports(
        tmp_path_factory,
        state_dir=tmp_path_factory.mktemp("local-cloud-state"),
        stack_name=STACK_NAME,
        parameters={"PollIntervalSeconds": "1", "DeployTimeoutSeconds": "120"},
        sagemaker_idle_timeout_s=60,
    )
    saved = {key: os.environ.get(key) for key in local_cloud.environment()}
    with local_cloud:
        os.environ.update(local_cloud.environment())
        yield local_cloud
    for key, value in saved.items():
        if value is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = value


@pytest.fixture(scope="module")
def stack(request: pytest.FixtureRequest) -> StackClient:
    """The stack under test, found through its Outputs: a deployed one when AWS_SAM_STACK_NAME names it
    (`sam deploy`, credentials from the environment), else this module's local cloud."""
    deployed = os.environ.get("AWS_SAM_STACK_NAME")
    if deployed:
        return StackClient(os.environ.get("AWS_ENDPOINT_URL"), deployed)
    cloud: LocalCloud = request.getfixturevalue("cloud")
    return StackClient(cloud.edge_url, STACK_NAME)


@pytest.fixture(scope="module")
def models_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("models")
