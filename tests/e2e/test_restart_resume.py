"""A local cloud stopped while a deployment is in flight finishes that deployment once started again."""

from __future__ import annotations

import io
import tarfile
import time
from collections.abc import Callable
from pathlib import Path

import boto3
import pytest
from modeldrop_local.cloud import LocalCloud
from modeldrop_local.stack_client import StackClient

from tests.utils import free_port

# Loads for a few seconds, so the cloud can be stopped while the endpoint is still Creating.
SLOW_LOADING_INFERENCE = b"""
import json, time

def model_fn(model_dir):
    time.sleep(6)
    return 0

def input_fn(body, content_type):
    return json.loads(body)

def predict_fn(data, model):
    return [7 for _ in data]

def output_fn(prediction, accept):
    return json.dumps(prediction)
"""


def _slow_loading_model(path: Path) -> Path:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as archive:
        for name, data in (("weights.json", b"[0]"), ("code/inference.py", SLOW_LOADING_INFERENCE)):
            member = tarfile.TarInfo(name)
            member.size = len(data)
            archive.addfile(member, io.BytesIO(data))
    path.write_bytes(buffer.getvalue())
    return path


def _clouds_on_one_state(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Callable[[], LocalCloud]:
    """Makes local clouds on the same ports and state dir, to run one after the other (a restart); this
    process's clients (boto3, StackClient) reach whichever is up."""
    edge_port, api_port = free_port(), free_port()

    def cloud() -> LocalCloud:
        return LocalCloud(
            edge_port=edge_port,
            api_port=api_port,
            state_dir=tmp_path / "state",
            function_log_dir=tmp_path / "logs",
        )

    for key, value in cloud().environment().items():
        monkeypatch.setenv(key, value)
    return cloud


@pytest.mark.slow
def test_a_deployment_in_flight_at_stop_finishes_after_a_restart(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given a local cloud with a state dir, and a model whose endpoint is being created
    new_cloud = _clouds_on_one_state(tmp_path, monkeypatch)
    first = new_cloud()
    stack = StackClient(first.edge_url, first.stack_name)
    with first:
        version = stack.upload(_slow_loading_model(tmp_path / "model.tar.gz"), "slow")
        records = stack.records()
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            deployment = next(iter(records.list_deployments("slow", limit=1)), None)
            if deployment is not None and str(deployment.status) == "Deploying":
                break
            time.sleep(0.1)
        assert deployment is not None and str(deployment.status) == "Deploying"
    # When the cloud is stopped before the endpoint is InService, then started again on the same state
    second = new_cloud()
    with second:
        # Then the deployment is followed to the end (its execution was not lost with the first cloud)
        final = stack.follow("slow", version, timeout_s=120, progress=lambda _line: None, poll_s=0.2)
        assert final is not None and str(final.status) == "InService", final.reason if final else None
        answer = stack.invoke("slow", b"[[1, 2]]", "application/json")
        assert answer.status_code == 200 and answer.json() == [7]


def test_objects_in_the_models_bucket_survive_a_restart(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given a local cloud with a state dir and an object in its models bucket
    new_cloud = _clouds_on_one_state(tmp_path, monkeypatch)
    first = new_cloud()
    with first:
        assert first.stack is not None
        bucket = first.stack.outputs["ModelsBucketName"]
        boto3.client("s3", endpoint_url=first.edge_url).put_object(
            Bucket=bucket, Key="models/a/x", Body=b"kept"
        )
    # When the cloud is started again on the same state (the stack sends CreateBucket again on start)
    second = new_cloud()
    with second:
        # Then the object is still there, byte for byte
        body = boto3.client("s3", endpoint_url=second.edge_url).get_object(Bucket=bucket, Key="models/a/x")
        assert body["Body"].read() == b"kept"
