"""Endpoint lifecycle through boto3: create, fail (each reason), update, roll back, delete, restart."""

from __future__ import annotations

import json
import shutil
import tarfile
from pathlib import Path
from typing import Any

import boto3
import pytest
from botocore.exceptions import ClientError
from modeldrop import tarball
from modeldrop_local.example_models import iris_sample
from modeldrop_local.sagemaker import start_in_thread

from reliability.tarballs import file_member, special_member, tar_gz
from tests.integration.local_sagemaker.conftest import (
    BUCKET,
    CLIENT_CONFIG,
    ModelUrls,
    create_serverless_endpoint,
    invoke_json,
    settings_for,
)
from tests.standalone_sagemaker import wait_until_settled

IRIS_PREDICTIONS = [0, 0, 1, 2]


def test_create_serves_the_models_predictions(sm: Any, runtime: Any, model_urls: ModelUrls) -> None:
    # Given a real scikit-learn tarball in S3, When an endpoint is created
    create_serverless_endpoint(sm, "lc-iris", model_urls.iris)
    assert sm.describe_endpoint(EndpointName="lc-iris")["EndpointStatus"] in {"Creating", "InService"}
    # Then it becomes InService with its serverless config
    description = wait_until_settled(sm, "lc-iris")
    assert description["EndpointStatus"] == "InService", description.get("FailureReason")
    assert description["ProductionVariants"][0]["CurrentServerlessConfig"] == {
        "MemorySizeInMB": 2048,
        "MaxConcurrency": 2,
    }
    assert "FailureReason" not in description
    # And it answers what the model answers in-process, naming the variant
    response = runtime.invoke_endpoint(
        EndpointName="lc-iris", Body=json.dumps(iris_sample()), ContentType="application/json"
    )
    assert response["InvokedProductionVariant"] == "AllTraffic"
    assert response["ContentType"] == "application/json"
    assert json.loads(response["Body"].read()) == IRIS_PREDICTIONS
    # And the endpoint is listed
    listed = sm.list_endpoints(NameContains="lc-iris", StatusEquals="InService")["Endpoints"]
    assert [e["EndpointName"] for e in listed] == ["lc-iris"]


@pytest.mark.parametrize(
    ("name", "url_of", "environment", "reason"),
    [
        ("lc-broken", "broken", None, "Failed to extract model data archive"),
        ("lc-traversal", "traversal", None, "escape.txt"),
        ("lc-missing", "missing", None, 'Failed to download model data for container "primary"'),
        (
            "lc-noload",
            "behaviour",
            {"FAIL_TO_LOAD": "1"},
            "model_fn refused to load because FAIL_TO_LOAD is set",
        ),
    ],
    ids=["not-a-tarball", "path-traversal", "no-object", "load-exception"],
)
def test_create_fails_with_a_reason(
    sm: Any,
    runtime: Any,
    model_urls: ModelUrls,
    name: str,
    url_of: str,
    environment: dict[str, str] | None,
    reason: str,
) -> None:
    # Given a model that cannot be served, When its endpoint is created
    create_serverless_endpoint(sm, name, getattr(model_urls, url_of), environment=environment)
    # Then it ends Failed with a reason that says why
    description = wait_until_settled(sm, name)
    assert description["EndpointStatus"] == "Failed"
    assert reason in description["FailureReason"]
    # And invoking it is refused like an endpoint that does not serve
    with pytest.raises(ClientError) as caught:
        invoke_json(runtime, name, iris_sample())
    assert caught.value.response["Error"]["Code"] == "ValidationError"
    # And a Failed endpoint can be deleted
    sm.delete_endpoint(EndpointName=name)


def test_traversal_wrote_nothing_outside(local_sagemaker: Any, sm: Any, model_urls: ModelUrls) -> None:
    # Given the traversal tarball was refused (previous test or now)
    create_serverless_endpoint(sm, "lc-trav2", model_urls.traversal)
    wait_until_settled(sm, "lc-trav2")
    # Then no file escaped the state directory's model-data folder
    state_dir = Path(local_sagemaker.app.service.settings.state_dir)
    assert not list(state_dir.parent.rglob("escape.txt"))


def test_update_switches_and_a_failed_update_rolls_back(sm: Any, runtime: Any, model_urls: ModelUrls) -> None:
    # Given an InService endpoint on the built-in scikit-learn loader
    create_serverless_endpoint(sm, "lc-upd", model_urls.iris)
    assert wait_until_settled(sm, "lc-upd")["EndpointStatus"] == "InService"
    assert invoke_json(runtime, "lc-upd", iris_sample()) == IRIS_PREDICTIONS
    # When it is updated to a config with custom handlers
    create_serverless_endpoint(
        sm, "lc-upd", model_urls.behaviour, config_name="lc-upd-v2", create_endpoint=False, max_concurrency=3
    )
    sm.update_endpoint(EndpointName="lc-upd", EndpointConfigName="lc-upd-v2")
    # Then a second update while Updating is refused as SageMaker does (or it already finished)
    try:
        sm.update_endpoint(EndpointName="lc-upd", EndpointConfigName="lc-upd-v2")
    except ClientError as busy:
        assert "Cannot update in-progress endpoint" in busy.response["Error"]["Message"]
    description = wait_until_settled(sm, "lc-upd")
    # And the endpoint serves the new config
    assert description["EndpointStatus"] == "InService"
    assert description["EndpointConfigName"] == "lc-upd-v2"
    assert description["ProductionVariants"][0]["CurrentServerlessConfig"]["MaxConcurrency"] == 3
    assert invoke_json(runtime, "lc-upd", {"rows": iris_sample()}) == {"predictions": IRIS_PREDICTIONS}

    # When it is updated to a model that cannot load
    create_serverless_endpoint(
        sm,
        "lc-upd",
        model_urls.behaviour,
        config_name="lc-upd-v3",
        create_endpoint=False,
        environment={"FAIL_TO_LOAD": "1"},
    )
    sm.update_endpoint(EndpointName="lc-upd", EndpointConfigName="lc-upd-v3")
    description = wait_until_settled(sm, "lc-upd")
    # Then it is back InService on the previous config, with the reason recorded
    assert description["EndpointStatus"] == "InService"
    assert description["EndpointConfigName"] == "lc-upd-v2"
    assert "FAIL_TO_LOAD" in description["FailureReason"]
    # And the previous config still answers
    assert invoke_json(runtime, "lc-upd", {"rows": iris_sample()}) == {"predictions": IRIS_PREDICTIONS}


def test_delete_stops_workers_and_removes_files(
    local_sagemaker: Any, sm: Any, runtime: Any, model_urls: ModelUrls
) -> None:
    import psutil

    # Given an InService endpoint with a warm worker
    create_serverless_endpoint(sm, "lc-del", model_urls.iris, provisioned=1)
    assert wait_until_settled(sm, "lc-del")["EndpointStatus"] == "InService"
    assert invoke_json(runtime, "lc-del", iris_sample()) == IRIS_PREDICTIONS
    service = local_sagemaker.app.service
    pids = [child.pid for child in psutil.Process().children(recursive=True)]
    model_data = Path(service.settings.state_dir) / "model-data" / "lc-del"
    assert model_data.is_dir()
    workers_before = service.data_plane.metrics("lc-del")["Workers"]["workers"]
    assert workers_before >= 1
    # When it is deleted
    sm.delete_endpoint(EndpointName="lc-del")
    # Then it disappears (Deleting first, then not found) and its files are gone
    service.wait_idle()
    with pytest.raises(ClientError) as caught:
        sm.describe_endpoint(EndpointName="lc-del")
    assert caught.value.response["Error"]["Message"].startswith("Could not find endpoint")
    assert not model_data.exists()
    with pytest.raises(ClientError) as caught:
        invoke_json(runtime, "lc-del", iris_sample())
    assert caught.value.response["Error"]["Message"] == "Endpoint lc-del of account 123456789012 not found."
    # And fewer processes run than before (its worker was stopped)
    alive = [
        pid for pid in pids if psutil.pid_exists(pid) and psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    ]
    assert len(alive) <= len(pids) - workers_before


def test_state_survives_a_restart(s3_endpoint: str, model_urls: ModelUrls, tmp_path: Path) -> None:
    # Given an InService endpoint on a local SageMaker that is then stopped
    settings = settings_for(tmp_path / "state", s3_endpoint, max_endpoints=1)
    first = start_in_thread(settings)
    try:
        sm = boto3.client("sagemaker", endpoint_url=first.url, config=CLIENT_CONFIG)
        create_serverless_endpoint(sm, "lc-persist", model_urls.iris)
        assert wait_until_settled(sm, "lc-persist")["EndpointStatus"] == "InService"
        sm.add_tags(
            ResourceArn=sm.describe_endpoint(EndpointName="lc-persist")["EndpointArn"],
            Tags=[{"Key": "k", "Value": "v"}],
        )
    finally:
        first.stop()
    # When a new process starts on the same state directory
    second = start_in_thread(settings)
    try:
        sm = boto3.client("sagemaker", endpoint_url=second.url, config=CLIENT_CONFIG)
        runtime = boto3.client("sagemaker-runtime", endpoint_url=second.url, config=CLIENT_CONFIG)
        # Then the endpoint, its config, model and tags are back, and it serves at once
        description = sm.describe_endpoint(EndpointName="lc-persist")
        assert description["EndpointStatus"] == "InService"
        assert sm.list_tags(ResourceArn=description["EndpointArn"])["Tags"] == [{"Key": "k", "Value": "v"}]
        assert sm.describe_endpoint_config(EndpointConfigName="lc-persist-config")["ProductionVariants"]
        assert invoke_json(runtime, "lc-persist", iris_sample()) == IRIS_PREDICTIONS
        # And the account quota still holds: a second endpoint exceeds max_endpoints=1
        with pytest.raises(ClientError) as caught:
            create_serverless_endpoint(sm, "lc-persist-2", model_urls.iris)
        assert caught.value.response["Error"]["Code"] == "ResourceLimitExceeded"
    finally:
        second.stop()
    # When the extracted model is lost between runs
    shutil.rmtree(settings.state_dir / "model-data")
    third = start_in_thread(settings)
    try:
        sm = boto3.client("sagemaker", endpoint_url=third.url, config=CLIENT_CONFIG)
        runtime = boto3.client("sagemaker-runtime", endpoint_url=third.url, config=CLIENT_CONFIG)
        # Then the endpoint is deployed again from its ModelDataUrl and serves
        assert wait_until_settled(sm, "lc-persist")["EndpointStatus"] == "InService"
        assert invoke_json(runtime, "lc-persist", iris_sample()) == IRIS_PREDICTIONS
    finally:
        third.stop()


def test_quickstart_script_matches_in_process_predictions(local_sagemaker: Any, s3_endpoint: str) -> None:
    from modeldrop_local.sagemaker.quickstart import run

    # When the quickstart deploys the iris model with plain boto3 and its waiter
    result = run(local_sagemaker.url, s3_endpoint, bucket="quickstart", name="lc-quickstart")
    # Then the endpoint answers exactly what the model predicts in-process
    assert result["answer"] == result["in_process"] == IRIS_PREDICTIONS


def test_a_model_that_loads_too_slowly_fails(s3_endpoint: str, model_urls: ModelUrls, tmp_path: Path) -> None:
    # Given a local SageMaker whose workers must be up within 1 s
    server = start_in_thread(settings_for(tmp_path / "state", s3_endpoint, startup_timeout_s=1.0))
    try:
        sm = boto3.client("sagemaker", endpoint_url=server.url, config=CLIENT_CONFIG)
        # When the model takes 20 s to load
        create_serverless_endpoint(sm, "lc-slow", model_urls.behaviour, environment={"LOAD_SLEEP": "20"})
        description = wait_until_settled(sm, "lc-slow")
        # Then the endpoint fails on the start-up limit rather than waiting for it
        assert description["EndpointStatus"] == "Failed"
        assert "did not pass the ping health check" in description["FailureReason"]
        assert "start-up timeout" in description["FailureReason"]
    finally:
        server.stop()


def test_memory_size_holds_at_load_and_at_request_time(sm: Any, runtime: Any, model_urls: ModelUrls) -> None:
    # Given MemorySizeInMB 1024, When the model needs 1300 MB to load
    create_serverless_endpoint(
        sm, "lc-greedy", model_urls.behaviour, memory_mb=1024, environment={"LOAD_ALLOCATE_MB": "1300"}
    )
    description = wait_until_settled(sm, "lc-greedy")
    # Then the endpoint fails, saying it is over memory
    assert description["EndpointStatus"] == "Failed"
    assert "over memory" in description["FailureReason"]
    # Given a model that fits, When one request makes it grow past 1024 MB
    create_serverless_endpoint(sm, "lc-grows", model_urls.behaviour, memory_mb=1024)
    assert wait_until_settled(sm, "lc-grows")["EndpointStatus"] == "InService"
    with pytest.raises(ClientError) as caught:
        invoke_json(runtime, "lc-grows", {"rows": iris_sample(), "allocate_mb": 1300})
    # Then that request is a ModelError naming the limit, and the next request is served
    assert caught.value.response["Error"]["Code"] == "ModelError"
    assert "over memory" in caught.value.response["Error"]["Message"]
    assert invoke_json(runtime, "lc-grows", {"rows": iris_sample()}) == {"predictions": IRIS_PREDICTIONS}


# --- the local SageMaker's own extraction, with no OnUpload in front ------------------------------

LINK_CHAIN = [
    file_member("model.joblib", b"weights"),
    special_member("x", tarfile.SYMTYPE, "a/b/.."),  # before the link it goes through
    special_member("a", tarfile.DIRTYPE),
    special_member("a/b", tarfile.SYMTYPE, ".."),
]


def _create_from(sm: Any, s3_endpoint: str, name: str, body: bytes) -> dict[str, Any]:
    s3 = boto3.client("s3", endpoint_url=s3_endpoint, region_name="us-east-1")
    s3.put_object(Bucket=BUCKET, Key=f"{name}/model.tar.gz", Body=body)
    create_serverless_endpoint(sm, name, f"s3://{BUCKET}/{name}/model.tar.gz")
    description: dict[str, Any] = wait_until_settled(sm, name)
    sm.delete_endpoint(EndpointName=name)
    return description


def test_a_link_chain_is_refused_by_the_extraction(local_sagemaker: Any, sm: Any, s3_endpoint: str) -> None:
    # Given a tarball whose link 'x' leaves the root through the link 'a/b', sent to SageMaker directly
    description = _create_from(sm, s3_endpoint, "lc-chain", tar_gz(LINK_CHAIN))
    # Then the endpoint fails, naming the link and where it points
    assert description["EndpointStatus"] == "Failed"
    assert description["FailureReason"] == (
        f'Failed to extract model data archive from URL "s3://{BUCKET}/lc-chain/model.tar.gz". Please ensure '
        "that the object located at the URL is a valid tar.gz archive: symlink 'x' points outside the "
        "archive root: 'a/b/..' leads to '..' through 'a/b'"
    )


def test_the_on_disk_guard_holds_without_the_archive_check(
    local_sagemaker: Any, sm: Any, s3_endpoint: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given the archive's namespace check switched off, and the same chain
    monkeypatch.setattr(tarball, "check_links", lambda symlinks, members: None)
    description = _create_from(sm, s3_endpoint, "lc-chain-disk", tar_gz(LINK_CHAIN))
    # Then the extraction's own guard refuses it on the real filesystem
    assert description["EndpointStatus"] == "Failed"
    assert "symlink 'x' points outside the extraction root: 'a/b/..' leads to" in description["FailureReason"]
    # and nothing of it is left on disk
    state_dir = Path(local_sagemaker.app.service.settings.state_dir)
    assert not [path for path in state_dir.rglob("x") if path.is_symlink()]


def test_a_member_the_filesystem_refuses_is_one_sentence(
    local_sagemaker: Any, sm: Any, s3_endpoint: str
) -> None:
    # Given a name under PATH_MAX on its own (4015 bytes) but over it under the model directory
    member, data = file_member("placeholder", b"x")
    member.pax_headers = {"path": "/".join(["d" * 250] * 16)}
    description = _create_from(
        sm, s3_endpoint, "lc-long", tar_gz([file_member("model.joblib", b"w"), (member, data)])
    )
    # Then the reason is one sentence naming the member, not a traceback
    assert description["EndpointStatus"] == "Failed"
    assert description["FailureReason"] == (
        f'Failed to extract model data archive from URL "s3://{BUCKET}/lc-long/model.tar.gz": '
        f"could not write member '{'d' * 60}...': File name too long."
    )


def test_an_unexpected_error_is_one_sentence_and_its_trace_is_logged(
    local_sagemaker: Any, sm: Any, model_urls: ModelUrls, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given a launcher that fails in a way nobody foresaw, with a message of several lines
    class Exploding:
        def prepare(self, spec: Any) -> None:
            raise RuntimeError("the launcher broke\nsecond line\nthird line")

    lifecycle = local_sagemaker.app.service.lifecycle
    monkeypatch.setattr(lifecycle, "launcher", Exploding())
    # When an endpoint is created
    create_serverless_endpoint(sm, "lc-unexpected", model_urls.iris)
    description = wait_until_settled(sm, "lc-unexpected")
    # Then its FailureReason is one sentence with the step; the trace is in the endpoint's log
    assert description["EndpointStatus"] == "Failed"
    assert (
        description["FailureReason"]
        == "Internal error while loading the model: RuntimeError: the launcher broke."
    )
    log = lifecycle.registry.log.read("lc-unexpected")
    assert "Traceback (most recent call last)" in log
    assert "third line" in log
    sm.delete_endpoint(EndpointName="lc-unexpected")
