"""Fake credentials for the local cloud's own clients, only when the user configured none."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from modeldrop_local.credentials import use_fake_credentials_if_none
from modeldrop_local.stack_client import StackClient


@pytest.fixture
def new_user(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    """No AWS variable and an empty home: what a machine that never ran `aws configure` has."""
    for key in list(os.environ):
        if key.startswith("AWS_"):
            monkeypatch.delenv(key)
    monkeypatch.setenv("HOME", str(tmp_path))
    return tmp_path


def test_without_credentials_fake_ones_are_used_then_taken_back(new_user: Path) -> None:
    # Given no credentials anywhere
    # When the local cloud puts its fake ones in place
    restore = use_fake_credentials_if_none()
    # Then boto3 signs with them, and once the cloud stops the environment is as it was
    assert (os.environ["AWS_ACCESS_KEY_ID"], os.environ["AWS_SECRET_ACCESS_KEY"]) == ("testing", "testing")
    restore()
    assert "AWS_ACCESS_KEY_ID" not in os.environ and "AWS_SECRET_ACCESS_KEY" not in os.environ


def test_credentials_a_user_set_are_left_alone(new_user: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # Given credentials in a profile of the user's ~/.aws
    (new_user / ".aws").mkdir()
    (new_user / ".aws" / "credentials").write_text(
        "[default]\naws_access_key_id = AKIDUSER\naws_secret_access_key = user-secret\n"
    )
    # When the local cloud starts
    restore = use_fake_credentials_if_none()
    # Then it adds nothing to the environment: the user's profile still signs
    assert "AWS_ACCESS_KEY_ID" not in os.environ
    restore()
    # And with credentials in the environment, they stay exactly as they were
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "AKIDENV")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "env-secret")
    use_fake_credentials_if_none()()
    assert (os.environ["AWS_ACCESS_KEY_ID"], os.environ["AWS_SECRET_ACCESS_KEY"]) == ("AKIDENV", "env-secret")


def test_cli_against_a_loopback_edge_needs_no_configuration(new_user: Path) -> None:
    # Given no credentials and no region configured
    # When the CLI talks to a local edge, and to AWS
    local = StackClient("http://127.0.0.1:4566").session
    remote = StackClient(None).session
    # Then the local one signs with fake credentials in the local region; AWS gets nothing made up
    credentials = local.get_credentials()
    assert credentials is not None and credentials.access_key == "testing"
    assert local.region_name == "us-east-1"
    assert remote.region_name is None
