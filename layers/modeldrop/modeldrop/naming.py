"""Names: the model name in an S3 key, and the SageMaker names derived from it.

SageMaker endpoint, endpoint-config and model names share one rule (botocore's service model):
at most 63 characters matching ^[a-zA-Z0-9](-*[a-zA-Z0-9]){0,62}$.
"""

from __future__ import annotations

import hashlib
import re
from urllib.parse import unquote_plus

from modeldrop.rejection import RejectionCode, UploadRejected

MODEL_NAME_PATTERN = re.compile(r"^[a-z0-9]([a-z0-9-]{0,46}[a-z0-9])?$")
SAGEMAKER_NAME_PATTERN = re.compile(r"^[a-zA-Z0-9](-*[a-zA-Z0-9]){0,62}$")
SAGEMAKER_NAME_MAX = 63
MODELS_PREFIX = "models/"
TARBALL_NAME = "model.tar.gz"
CONFIG_NAME = "modeldrop.json"
NAME_PREFIX = "modeldrop-"


def decode_event_key(raw_key: str) -> str:
    """S3 event notifications URL-encode object keys (a space arrives as '+')."""
    return unquote_plus(raw_key)


def model_name_from_key(key: str) -> str:
    """The <name> of models/<name>/model.tar.gz, or UploadRejected (code key) saying why not."""
    parts = key.split("/")
    if len(parts) != 3 or parts[0] + "/" != MODELS_PREFIX or parts[2] != TARBALL_NAME:
        raise UploadRejected(
            RejectionCode.KEY,
            f"key {key!r} is not a model upload: expected {MODELS_PREFIX}<name>/{TARBALL_NAME} "
            "(exactly one folder level under models/)",
        )
    name = parts[1]
    if not MODEL_NAME_PATTERN.match(name):
        raise UploadRejected(
            RejectionCode.KEY,
            f"model name {name!r} in key {key!r} is invalid: use 1-48 lowercase letters, digits and "
            "hyphens, starting and ending with a letter or digit",
        )
    return name


def config_key(model_name: str) -> str:
    """The sibling object that may hold the model's modeldrop.json."""
    return f"{MODELS_PREFIX}{model_name}/{CONFIG_NAME}"


PINNED_PREFIX = "deployments/"


def pinned_model_key(model_name: str, deployment_id: str) -> str:
    """Where a deployment's exact tarball version is copied for SageMaker (outside models/: no new event)."""
    return f"{PINNED_PREFIX}{model_name}/{deployment_id}/{TARBALL_NAME}"


def endpoint_name(model_name: str) -> str:
    """One endpoint per model; valid model names always fit (10 + 48 characters)."""
    return fit_sagemaker_name(f"{NAME_PREFIX}{model_name}", "")


def versioned_name(model_name: str, version: int) -> str:
    """The SageMaker model and endpoint-config name of one deployment (unique per model and version)."""
    return fit_sagemaker_name(f"{NAME_PREFIX}{model_name}", f"-v{version}")


def fit_sagemaker_name(base: str, suffix: str) -> str:
    """base + suffix, shortened to 63 characters without losing uniqueness (a hash of the full base)."""
    name = base + suffix
    if len(name) > SAGEMAKER_NAME_MAX:
        digest = hashlib.sha256(base.encode()).hexdigest()[:8]
        keep = SAGEMAKER_NAME_MAX - len(suffix) - len(digest) - 1
        name = f"{base[:keep].rstrip('-')}-{digest}{suffix}"
    if not SAGEMAKER_NAME_PATTERN.match(name):
        raise ValueError(f"cannot build a valid SageMaker name from {base!r} and {suffix!r}")
    return name


def deployment_id(model_name: str, version: int, bucket: str, key: str, object_version: str | None) -> str:
    """Unique id of one deployment, also its Step Functions execution name (≤ 80 characters).

    The hash of the uploaded object keeps execution names unique even if the table were recreated
    and version numbers started again (execution names must be unique for 90 days).
    """
    digest = hashlib.sha256(f"{bucket}/{key}?versionId={object_version}".encode()).hexdigest()[:8]
    return f"{model_name}-v{version:06d}-{digest}"
