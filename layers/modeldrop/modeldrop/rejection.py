"""The one refusal of an upload: `UploadRejected`, raised where the problem is found.

Every check OnUpload (and `modeldrop package`) runs on an upload raises it with a `code` saying which
check refused and a `reason` written for the person who uploaded the file; OnUpload records the reason
on the deployment (status Rejected) without re-wrapping it. A rollback the API refuses is not an upload
refusal (an HTTP 409 on a request): that stays `modeldrop.rollback.RollbackRefused`.
"""

from __future__ import annotations

from enum import StrEnum


class RejectionCode(StrEnum):
    """Which check refused the upload (logged with the reason; the reason alone is recorded)."""

    KEY = "key"  # the S3 key names no model (naming)
    TARBALL = "tarball"  # not a safe, readable model tarball (tarball)
    CONFIG = "config"  # modeldrop.json invalid, or no setting fits the model (model_config)
    LAYOUT = "layout"  # the image cannot load the files where they are (frameworks)
    SERVING = "serving"  # no handler can be made for the image (serving_setup)
    LIBRARIES = "libraries"  # the image's libraries cannot load the pickle (image_libraries)
    PYTHON = "python"  # code/*.py uses syntax newer than the image's Python (code_checks)
    REQUIREMENTS = "requirements"  # code/requirements.txt names what has no wheel for the image
    QUOTA = "quota"  # the account's serverless quotas leave no room (preflight)


class UploadRejected(Exception):
    """The upload cannot be deployed; `reason` tells the uploader why, `code` which check said so."""

    def __init__(self, code: RejectionCode, reason: str) -> None:
        super().__init__(reason)
        self.code = code
        self.reason = reason
