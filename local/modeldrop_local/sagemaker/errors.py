"""SageMaker's error shapes: code, HTTP status and (for ModelError) the modeled extra members.

Control plane (`json` protocol) answers `{"__type": code, "message": ...}`; the runtime (`rest-json`)
also sets `x-amzn-ErrorType`. botocore turns both into a ClientError whose Error.Code is `code`.
"""

from __future__ import annotations

from typing import Any


class SageMakerError(Exception):
    def __init__(self, code: str, message: str, status: int = 400, **extra: Any) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.status = status
        self.extra = extra

    def body(self) -> dict[str, Any]:
        return {"__type": self.code, "message": self.message, **self.extra}


# -- control plane


def validation(message: str) -> SageMakerError:
    return SageMakerError("ValidationException", message)


def not_found(kind: str, arn: str) -> SageMakerError:
    # SageMaker reports a missing model/config/endpoint as a ValidationException naming its ARN.
    return validation(f'Could not find {kind} "{arn}".')


def already_exists(kind: str, arn: str) -> SageMakerError:
    return validation(f'Cannot create already existing {kind} "{arn}".')


def resource_not_found(message: str) -> SageMakerError:
    return SageMakerError("ResourceNotFound", message)


def resource_limit_exceeded(message: str) -> SageMakerError:
    return SageMakerError("ResourceLimitExceeded", message)


def serialization(message: str) -> SageMakerError:
    return SageMakerError("SerializationException", message)


def unknown_operation(target: str) -> SageMakerError:
    return SageMakerError("UnknownOperationException", f"Unknown or unsupported operation: {target!r}")


# -- runtime


def runtime_validation(message: str) -> SageMakerError:
    return SageMakerError("ValidationError", message)


def model_not_ready(message: str) -> SageMakerError:
    return SageMakerError("ModelNotReadyException", message, 429)


def service_unavailable(message: str) -> SageMakerError:
    return SageMakerError("ServiceUnavailable", message, 503)


def throttled(message: str) -> SageMakerError:
    # What SageMaker Serverless answers beyond MaxConcurrency: HTTP 400 ThrottlingException.
    return SageMakerError("ThrottlingException", message)


def internal_failure(message: str) -> SageMakerError:
    return SageMakerError("InternalFailure", message, 500)


def model_error(
    *, status: int, message: str, endpoint: str, region: str, account: str, container: str = "primary"
) -> SageMakerError:
    """ModelError 424 as SageMaker words it, with the model's own status and message."""
    log_group = f"/aws/sagemaker/Endpoints/{endpoint}"
    kind = "client" if 400 <= status < 500 else "server"
    text = (
        f'Received {kind} error ({status}) from {container} with message "{message}". See '
        f"https://{region}.console.aws.amazon.com/cloudwatch/home?region={region}#logEventViewer:"
        f"group={log_group} in account {account} for more information."
    )
    return SageMakerError(
        "ModelError",
        text,
        424,
        OriginalStatusCode=status,
        OriginalMessage=message,
        LogStreamArn=f"arn:aws:logs:{region}:{account}:log-group:{log_group}",
    )


def model_timeout(*, endpoint: str, region: str, account: str, container: str = "primary") -> SageMakerError:
    error = model_error(
        status=0,
        message=(
            f"Your invocation timed out while waiting for a response from container {container}. Review "
            "the latency metrics for each container in Amazon CloudWatch, resolve the issue, and try again."
        ),
        endpoint=endpoint,
        region=region,
        account=account,
        container=container,
    )
    error.message = str(error.extra["OriginalMessage"])
    return error
