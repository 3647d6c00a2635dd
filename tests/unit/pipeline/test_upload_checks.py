"""The conformance table's upload checks (tests/conformance/cases.py UPLOAD_CHECKS): each row's tarball
through OnUpload on moto (SageMaker stubbed: a Rejected row must make no SageMaker call beyond the
preflight's reads), or through `modeldrop package`'s requirements check, against the row's outcome."""

from __future__ import annotations

import io
import json
import tarfile
from dataclasses import replace
from pathlib import Path

import boto3
import joblib
import pytest
from botocore.stub import Stubber
from modeldrop.deploy import handle_upload
from modeldrop.records import DeploymentStatus
from modeldrop.rejection import UploadRejected
from modeldrop_local.example_models.iris import fit_logistic, iris_data
from modeldrop_local.packaging import check_requirements
from sklearn.ensemble import RandomForestClassifier

from tests.conformance.cases import UPLOAD_CHECKS, UploadCheck
from tests.unit.pipeline.conftest import Stack, StubbedSageMaker, deploy_dependencies
from tests.unit.pipeline.template_resources import REGION
from tests.unit.pipeline.test_on_upload import expect_endpoint_created, expect_model_and_config, upload
from tests.unit.test_preflight import account_with_endpoints
from tests.utils import build_wheel, isolate_pip


def artifact(kind: str, folder: Path) -> bytes:
    path = folder / f"{kind}.joblib"
    if kind == "sklearn_numpy2":
        joblib.dump(RandomForestClassifier(n_estimators=3, random_state=0).fit(*iris_data()), path)
    elif kind == "sklearn_compressed":
        joblib.dump(fit_logistic(), path, compress=3)
    else:
        joblib.dump(fit_logistic(), path)
    return path.read_bytes()


def tarball_of(check: UploadCheck, folder: Path) -> bytes:
    files = {"model.joblib": artifact(check.artifact, folder)}
    if check.code is not None:
        files["code/inference.py"] = check.code.encode()
    if check.config is not None:
        files["modeldrop.json"] = json.dumps(check.config).encode()
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as archive:
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            archive.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


def account(sagemaker: StubbedSageMaker, quotas: Stubber, quota: tuple[int, int]) -> None:
    """The preflight's reads: other serverless endpoints holding quota[1], and the two quota values."""
    total, allocated = quota
    account_with_endpoints(
        sagemaker.stubber, {"other": {"MemorySizeInMB": 2048, "MaxConcurrency": allocated}}
    )
    for code, value in (("L-99AD19BF", 5.0), ("L-96300102", float(total))):
        quotas.add_response(
            "get_service_quota",
            {"Quota": {"ServiceCode": "sagemaker", "QuotaCode": code, "Value": value}},
            {"ServiceCode": "sagemaker", "QuotaCode": code},
        )


UPLOAD_ROWS = [check for check in UPLOAD_CHECKS if check.stage == "upload"]


@pytest.mark.parametrize("check", UPLOAD_ROWS, ids=[check.id for check in UPLOAD_ROWS])
def test_upload_check(check: UploadCheck, stack: Stack, sagemaker: StubbedSageMaker, tmp_path: Path) -> None:
    # Given the row's tarball uploaded (and the row's account, when it has one)
    uploaded = upload(stack, tarball_of(check, tmp_path))
    quotas_client = boto3.client("service-quotas", region_name=REGION)
    with Stubber(quotas_client) as quotas:
        if check.quota is not None:
            account(sagemaker, quotas, check.quota)
        if check.outcome == "noted":
            fitted = min(5, check.quota[0] - check.quota[1]) if check.quota else 5
            expect_model_and_config(sagemaker, uploaded, max_concurrency=fitted)
            expect_endpoint_created(sagemaker)

        # When OnUpload handles it
        deps = replace(
            deploy_dependencies(stack, sagemaker), service_quotas=quotas_client if check.quota else None
        )
        outcome = handle_upload(uploaded, deps)

    # Then the outcome is the row's, saying what the row says; SageMaker got only the calls expected
    sagemaker.stubber.assert_no_pending_responses()
    if check.outcome == "Rejected":
        assert outcome.status is DeploymentStatus.REJECTED
        said = outcome.reason or ""
    else:
        assert outcome.status is DeploymentStatus.DEPLOYING, outcome.reason
        record = stack.records().get_deployment("iris", 1)
        assert record is not None and record.serving_setup is not None
        said = "\n".join(record.serving_setup.notes)
    for words in check.mentions:
        assert words in said, said


PACKAGE_ROWS = [check for check in UPLOAD_CHECKS if check.stage == "package"]


@pytest.mark.parametrize("check", PACKAGE_ROWS, ids=[check.id for check in PACKAGE_ROWS])
def test_package_check(check: UploadCheck, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # Given a local index whose only wheel is for another Python, and pip told to use nothing else
    build_wheel(tmp_path / "wheels", "onlycp311", "1.0", "cp311-cp311-manylinux2014_x86_64")
    isolate_pip(monkeypatch, no_index="1", find_links=str(tmp_path / "wheels"))
    requirements = tmp_path / "requirements.txt"
    requirements.write_text(check.requirements or "")

    # When `modeldrop package` checks the requirements for the scikit-learn 1.2-1 image
    with pytest.raises(UploadRejected) as refused:
        check_requirements(requirements, "3.9", "sklearn 1.2-1", glibc="2.31")

    # Then it refuses, saying what the row says
    assert check.outcome == "Rejected"
    for words in check.mentions:
        assert words in refused.value.reason
