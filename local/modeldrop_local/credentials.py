"""Fake AWS credentials for the local cloud, only where nobody configured real ones.

The local cloud's own clients (the local SageMaker downloading ModelDataUrl, its log shipper, the CLI
talking to a loopback edge) sign their requests like any boto3 client, so with no credentials at all
they fail with "Unable to locate credentials" although the edge accepts any key. A user's own
credentials (environment, profile, SSO, credential process) are left as they are: they sign requests
to loopback just as well.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from urllib.parse import urlparse

import botocore.session
from botocore.exceptions import BotoCoreError

FAKE_CREDENTIALS = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing"}
# Credential providers that ask the network (EC2/ECS metadata): on a laptop they only time out, slowly.
_NETWORK_PROVIDERS = ("container-role", "iam-role")
_LOOPBACK_HOSTS = {"127.0.0.1", "localhost", "::1"}


def credentials_configured() -> bool:
    """True when boto3 would find credentials without asking an instance metadata service."""
    resolver = botocore.session.Session().get_component("credential_provider")
    for name in _NETWORK_PROVIDERS:
        resolver.remove(name)
    try:
        return resolver.load_credentials() is not None
    except BotoCoreError:  # a profile that is there but broken: configured, and the user's to fix
        return True


def use_fake_credentials_if_none() -> Callable[[], None]:
    """Put fake credentials in this process's environment when none are configured.

    Returns the function that takes them out again (a cloud started inside a test or another
    program must not leave the process changed).
    """
    if credentials_configured():
        return lambda: None
    added = {key: value for key, value in FAKE_CREDENTIALS.items() if key not in os.environ}
    os.environ.update(added)

    def restore() -> None:
        for key, value in added.items():
            if os.environ.get(key) == value:
                del os.environ[key]

    return restore


def client_environment(edge_url: str, region: str) -> dict[str, str]:
    """What a client (and every function) needs to reach a local cloud: its edge, fake credentials, the
    region. The local cloud gives it to its functions; a program driving one sets it for its clients."""
    return {
        "AWS_ENDPOINT_URL": edge_url,
        **FAKE_CREDENTIALS,
        "AWS_SESSION_TOKEN": "testing",
        "AWS_DEFAULT_REGION": region,
        "AWS_REGION": region,
    }


def is_loopback(url: str | None) -> bool:
    return bool(url) and urlparse(str(url)).hostname in _LOOPBACK_HOSTS
