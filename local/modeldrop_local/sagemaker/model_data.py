"""What a deployment downloads while Creating: ModelDataUrl, and an s3:// source directory.

Both are extracted with the checks OnUpload uses (modeldrop.tarball.safe_extract), and a failure is
a DeploymentFailed whose reason is SageMaker's own FailureReason wording.
"""

from __future__ import annotations

import hashlib
import shutil
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

from botocore.exceptions import BotoCoreError, ClientError
from modeldrop.rejection import UploadRejected
from modeldrop.tarball import MemberNotWritten, safe_extract

from modeldrop_local.sagemaker.records import EndpointDeployment
from modeldrop_local.sagemaker.worker.profiles import SUBMIT_DIRECTORY_ENV

Log = Callable[[str], None]


class DeploymentFailed(Exception):
    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def download_model_data(s3: Any, deployment: EndpointDeployment, log: Log) -> None:
    """Download ModelDataUrl and extract it into the deployment's model_dir."""
    url = deployment.model_data_url
    parsed = urlparse(url)
    if parsed.scheme != "s3" or not parsed.netloc or not parsed.path.strip("/"):
        raise DeploymentFailed(
            "The local SageMaker downloads model data from s3://bucket/key URLs only; "
            f'ModelDataUrl is "{url}".'
        )
    bucket, key = parsed.netloc, parsed.path.lstrip("/")
    if deployment.model_dir.exists():  # left over by an interrupted run
        shutil.rmtree(deployment.model_dir)
    log(f"downloading {url}")
    try:
        body = s3.get_object(Bucket=bucket, Key=key)["Body"]
        try:
            # SageMaker extracts any archive; whether the image can serve it is the health check's call.
            report = safe_extract(body, deployment.model_dir, require_model=False)
        finally:
            body.close()
    except (ClientError, BotoCoreError) as error:
        raise DeploymentFailed(
            f'Failed to download model data for container "primary" from URL: "{url}". '
            f"Please ensure that there is an object located at the URL and that it can be read ({error})."
        ) from error
    except UploadRejected as rejected:
        raise DeploymentFailed(
            f'Failed to extract model data archive from URL "{url}". Please ensure that '
            f"the object located at the URL is a valid tar.gz archive: {rejected.reason}"
        ) from rejected
    except MemberNotWritten as failure:
        raise DeploymentFailed(
            f'Failed to extract model data archive from URL "{url}": {failure}.'
        ) from failure
    log(f"extracted {report.member_count} files ({report.uncompressed_bytes} bytes)")


def fetch_source_dir(
    s3: Any, deployment: EndpointDeployment, cache_dir: Path, log: Log
) -> EndpointDeployment:
    """An s3:// SAGEMAKER_SUBMIT_DIRECTORY (the SDK's sourcedir.tar.gz), downloaded and extracted.

    The scikit-learn image does the same at start (sagemaker-containers 2.8.6 _files.py
    download_and_extract, called by _modules.import_module). Extracted with the model data's safety
    checks, into a cache keyed by URL and ETag, so a redeploy of the same code downloads nothing.
    """
    url = deployment.environment.get(SUBMIT_DIRECTORY_ENV, "")
    if not url.startswith("s3://"):
        return deployment
    parsed = urlparse(url)
    bucket, key = parsed.netloc, parsed.path.lstrip("/")
    try:
        etag = str(s3.head_object(Bucket=bucket, Key=key)["ETag"])
        folder = cache_dir / "sourcedir" / hashlib.sha256(f"{url}\n{etag}".encode()).hexdigest()[:24]
        if not folder.is_dir():
            staging = folder.with_name(f"{folder.name}.{uuid.uuid4().hex[:8]}.partial")
            body = s3.get_object(Bucket=bucket, Key=key)["Body"]
            try:
                safe_extract(body, staging, require_model=False)
            finally:
                body.close()
            try:
                staging.rename(folder)
            except OSError:  # another deployment of the same code got there first
                shutil.rmtree(staging, ignore_errors=True)
    except (ClientError, BotoCoreError) as error:
        raise DeploymentFailed(
            f'Failed to download the source directory {SUBMIT_DIRECTORY_ENV}="{url}": {error}'
        ) from error
    except UploadRejected as rejected:
        raise DeploymentFailed(
            f'The source directory {SUBMIT_DIRECTORY_ENV}="{url}" is not a safe tar.gz archive: '
            f"{rejected.reason}"
        ) from rejected
    except MemberNotWritten as failure:
        raise DeploymentFailed(
            f'Failed to extract the source directory {SUBMIT_DIRECTORY_ENV}="{url}": {failure}.'
        ) from failure
    log(f"source directory {url} (ETag {etag}) at {folder}")
    return deployment.model_copy(update={"source_dir": folder})
