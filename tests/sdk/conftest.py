"""The SageMaker Python SDK v2 against the local SageMaker + moto, one driver run per module.

The SDK lives in .venv-sdk (pandas, its own boto3 pin): the product's .venv stays lean. This
process (the product's pytest) starts moto and the local SageMaker on free loopback ports, builds the
tarballs, then runs tests/sdk/driver.py under .venv-sdk/bin/python, which talks to those ports
through AWS_ENDPOINT_URL_* and answers JSON on stdout. So the SDK is exercised as a user runs it,
in its own interpreter, and the local cloud runs exactly as `make local` runs it.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.standalone_sagemaker import Cloud, standalone_cloud


@pytest.fixture(scope="module")
def cloud(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cloud]:
    with standalone_cloud(tmp_path_factory.mktemp("sdk-sagemaker-state"), idle_timeout_s=30.0) as running:
        yield running


@pytest.fixture(scope="module")
def build_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("sdk-build")
