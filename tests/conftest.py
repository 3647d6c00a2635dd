"""Session-wide test settings: fake AWS credentials so no test can reach a real account."""

from __future__ import annotations

import os

import pytest

_FAKE_AWS_ENV = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_SECURITY_TOKEN": "testing",
    "AWS_SESSION_TOKEN": "testing",
    "AWS_DEFAULT_REGION": "us-east-1",
    "AWS_REGION": "us-east-1",
    "POWERTOOLS_TRACE_DISABLED": "true",
    "POWERTOOLS_METRICS_NAMESPACE": "modeldrop",
    "POWERTOOLS_SERVICE_NAME": "modeldrop",
}
for _key, _value in _FAKE_AWS_ENV.items():
    os.environ.setdefault(_key, _value)
# A developer's own profile or endpoint must never leak into a test run, unless the run targets a
# deployed stack on purpose (AWS_SAM_STACK_NAME, see tests/e2e/conftest.py).
if not os.environ.get("AWS_SAM_STACK_NAME"):
    for _key in ("AWS_PROFILE", "AWS_ENDPOINT_URL"):
        os.environ.pop(_key, None)


@pytest.fixture
def aws_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """Reassert the fake credentials for tests that change the environment."""
    for key, value in _FAKE_AWS_ENV.items():
        monkeypatch.setenv(key, value)
