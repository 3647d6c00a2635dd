"""Per-model configuration: the optional modeldrop.json, validated, and the fully resolved settings.

modeldrop.json uses snake_case keys, for example::

    {"framework": "sklearn", "framework_version": "1.2-1", "memory_mb": 2048,
     "max_concurrency": 5, "provisioned_concurrency": 1, "environment": {"LOG_LEVEL": "debug"}}

Every key is optional; unknown keys are errors (a typo must not be silently ignored). Values that
are absent come from the stack's defaults, memory from the model's size.
"""

from __future__ import annotations

import difflib
import json
import math
import re
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    PlainSerializer,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic.alias_generators import to_camel

from modeldrop.frameworks import (
    Framework,
    UnknownFrameworkImage,
    default_version,
    framework_from_image,
    image_for,
)
from modeldrop.guardrails.config import RolloutConfig, parse_rollout
from modeldrop.rejection import RejectionCode, UploadRejected
from modeldrop.smoke_test import SmokeTest

# ServerlessConfig limits, from botocore's SageMaker service model.
MEMORY_SIZES_MB = (1024, 2048, 3072, 4096, 5120, 6144)
MAX_CONCURRENCY_LIMIT = 200
# Environment limits of CreateModel's ContainerDefinition.Environment.
MAX_ENVIRONMENT_VARIABLES = 100
MAX_ENVIRONMENT_KEY_LENGTH = 1024
MAX_ENVIRONMENT_VALUE_LENGTH = 1024
_ENVIRONMENT_KEY = re.compile(r"^[a-zA-Z_][a-zA-Z0-9_]*$")
# SageMaker's ContainerDefinition.Image pattern is [\S]+; we also want a registry host and a repository.
_IMAGE_URI = re.compile(r"^[a-z0-9.-]+(:\d+)?/[a-z0-9._/-]+(:[\w][\w.-]{0,127}|@sha256:[0-9a-f]{64})?$")
_FRAMEWORK_VERSION = re.compile(r"^[\w][\w.-]{0,31}$")
# Memory above the uncompressed model size for the runtime, the server and the deserialised model.
MEMORY_HEADROOM_MB = 512
MEMORY_HEADROOM_FRACTION = 0.25

CONFIG_SOURCE = "modeldrop.json"
# "auto": the upload's Model Package is created Approved and deployed at once; "manual": it is created
# PendingManualApproval and deploys once approved (modeldrop.registry).
ApprovalMode = Literal["auto", "manual"]
CUSTOM_CODE_FRAMEWORK = Framework.SKLEARN


def _rejected(reason: str) -> UploadRejected:
    """The per-model configuration is invalid; `reason` names the key and the problem."""
    return UploadRejected(RejectionCode.CONFIG, reason)


class ModelConfig(BaseModel):
    """The contents of modeldrop.json; every field optional."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    framework: Framework | None = None
    framework_version: str | None = Field(default=None, strict=True)
    image: str | None = Field(default=None, strict=True, max_length=255)
    memory_mb: int | None = Field(default=None, strict=True)
    max_concurrency: int | None = Field(default=None, strict=True, ge=1, le=MAX_CONCURRENCY_LIMIT)
    provisioned_concurrency: int | None = Field(default=None, strict=True, ge=0, le=MAX_CONCURRENCY_LIMIT)
    environment: dict[str, str] = Field(default_factory=dict, strict=True)
    # One request sent to the new version once InService, before it goes live (modeldrop.smoke_test).
    smoke_test: SmokeTest | None = None
    # Canary or shadow bake of a new version before it goes live (modeldrop.guardrails); None: all at once.
    rollout: RolloutConfig | None = None
    approval: ApprovalMode | None = None

    @field_validator("framework_version")
    @classmethod
    def _version_shape(cls, value: str | None) -> str | None:
        if value is not None and not _FRAMEWORK_VERSION.match(value):
            raise ValueError(f"must look like a version such as '1.2-1' (got {value!r})")
        return value

    @field_validator("image")
    @classmethod
    def _image_shape(cls, value: str | None) -> str | None:
        if value is not None and not _IMAGE_URI.match(value):
            raise ValueError(
                "must be a container image URI such as "
                f"'123456789012.dkr.ecr.us-east-1.amazonaws.com/my-repo:tag' (got {value!r})"
            )
        return value

    @field_validator("memory_mb")
    @classmethod
    def _memory_size(cls, value: int | None) -> int | None:
        if value is not None and value not in MEMORY_SIZES_MB:
            raise ValueError(f"must be one of {', '.join(map(str, MEMORY_SIZES_MB))} (got {value})")
        return value

    @field_validator("environment")
    @classmethod
    def _environment_limits(cls, value: dict[str, str]) -> dict[str, str]:
        if len(value) > MAX_ENVIRONMENT_VARIABLES:
            raise ValueError(f"must have at most {MAX_ENVIRONMENT_VARIABLES} variables (got {len(value)})")
        for key, item in value.items():
            if len(key) > MAX_ENVIRONMENT_KEY_LENGTH or not _ENVIRONMENT_KEY.match(key):
                raise ValueError(
                    f"key {key[:80]!r} must be letters, digits and underscores, not starting with a digit, "
                    f"at most {MAX_ENVIRONMENT_KEY_LENGTH} characters"
                )
            if len(item) > MAX_ENVIRONMENT_VALUE_LENGTH:
                raise ValueError(
                    f"value of {key!r} must be at most {MAX_ENVIRONMENT_VALUE_LENGTH} characters "
                    f"(got {len(item)})"
                )
        return value

    @model_validator(mode="after")
    def _provisioned_within_max(self) -> ModelConfig:
        if (
            self.provisioned_concurrency is not None
            and self.max_concurrency is not None
            and self.provisioned_concurrency > self.max_concurrency
        ):
            raise ValueError(
                f"provisioned_concurrency ({self.provisioned_concurrency}) must not exceed "
                f"max_concurrency ({self.max_concurrency})"
            )
        return self


def _describe(error: Any, source: str) -> str:
    location = [str(part) for part in error["loc"]]
    key = ".".join(location)
    kind = error["type"]
    if kind == "extra_forbidden":
        hint = difflib.get_close_matches(
            location[-1].lower().replace("-", "_"), list(ModelConfig.model_fields), n=1
        )
        suggestion = f" (did you mean {hint[0]!r}?)" if hint else ""
        return f"{source}: unknown key {location[-1]!r}{suggestion}"
    message = str(error["msg"])
    if kind == "value_error":
        message = message.removeprefix("Value error, ")
        if not key:
            return f"{source}: {message}"
        return f"{source}: {key} {message}"
    if kind == "enum":
        message = message.replace("Input should be", "must be one of")
    message = message.replace("Input should be", "must be").replace("Input should have", "must have")
    message = message.replace("a valid dictionary", "a JSON object").replace("a valid integer", "an integer")
    return f"{source}: {key} {message} (got {error['input']!r})"


def parse_model_config(raw: bytes, source: str = CONFIG_SOURCE) -> ModelConfig:
    """Parse and validate modeldrop.json bytes; UploadRejected names the offending key."""
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise _rejected(f"{source}: not UTF-8 text") from None
    try:
        document = json.loads(text)
    except json.JSONDecodeError as error:
        raise _rejected(f"{source}: invalid JSON: {error}") from None
    except RecursionError:
        # Python's JSON decoder recurses once per nesting level: thousands of `[` under the size limit
        # would otherwise crash the upload's handler instead of rejecting the upload.
        raise _rejected(f"{source}: nested too deeply to be a modeldrop.json") from None
    if not isinstance(document, dict):
        raise _rejected(f"{source}: must be a JSON object (got {type(document).__name__})")
    try:
        return ModelConfig.model_validate(document)
    except ValidationError as error:
        raise _rejected("; ".join(_describe(item, source) for item in error.errors())) from None


def memory_for_model_size(uncompressed_bytes: int) -> int:
    """The smallest serverless memory size that holds the model plus headroom.

    Raises UploadRejected when the model alone is larger than the largest serverless size.
    """
    model_mb = uncompressed_bytes / 2**20
    largest = MEMORY_SIZES_MB[-1]
    if model_mb > largest:
        raise _rejected(
            f"model too large for serverless inference: {math.ceil(model_mb)} MB uncompressed, "
            f"more than the largest memory size ({largest} MB)"
        )
    needed = model_mb + max(MEMORY_HEADROOM_MB, model_mb * MEMORY_HEADROOM_FRACTION)
    return next((size for size in MEMORY_SIZES_MB if size >= needed), largest)


class ConfigDefaults(BaseModel):
    """Stack-wide defaults (template parameters). memory_mb None: size memory from the model."""

    memory_mb: int | None = None
    max_concurrency: int = Field(default=5, ge=1, le=MAX_CONCURRENCY_LIMIT)
    provisioned_concurrency: int = Field(default=0, ge=0, le=MAX_CONCURRENCY_LIMIT)


def _smoke_test_from_text(value: Any) -> Any:
    return SmokeTest.model_validate_json(value) if isinstance(value, str) else value


def _smoke_test_as_text(test: SmokeTest) -> str:
    return test.model_dump_json(exclude_unset=True)


# Stored (JSON mode) as its JSON text: DynamoDB takes no floats, and a request body may hold them.
StoredSmokeTest = Annotated[
    SmokeTest,
    BeforeValidator(_smoke_test_from_text),
    PlainSerializer(_smoke_test_as_text, return_type=str, when_used="json"),
]


def _rollout_from_text(value: Any) -> Any:
    return parse_rollout(value) if isinstance(value, str) else value


def _rollout_as_text(rollout: BaseModel) -> str:
    return rollout.model_dump_json()


# Stored (JSON mode) as its JSON text, as the smoke test: DynamoDB takes no floats (max_error_rate).
StoredRollout = Annotated[
    RolloutConfig,
    BeforeValidator(_rollout_from_text),
    PlainSerializer(_rollout_as_text, return_type=str, when_used="json"),
]


class ResolvedConfig(BaseModel):
    """Every deployment setting decided: what CreateModel and CreateEndpointConfig get, recorded on the
    deployment (its `config`, camelCase)."""

    model_config = ConfigDict(frozen=True, alias_generator=to_camel, populate_by_name=True)

    # None: an image of its own whose framework neither modeldrop.json nor the image URI says.
    framework: Framework | None = None
    framework_version: str | None = None
    image: str
    memory_mb: int
    max_concurrency: int
    provisioned_concurrency: int
    environment: dict[str, str]
    smoke_test: StoredSmokeTest | None = None
    rollout: StoredRollout | None = None
    # None is "auto" (records written before the approval gate hold no such key, and keep none).
    approval: ApprovalMode | None = None
    # False when modeldrop.json set no max_concurrency: the preflight may lower the stack default to what
    # the account's quota leaves (modeldrop.preflight). Not recorded (the record holds the value used).
    max_concurrency_set: bool = Field(default=True, exclude=True)


def resolve_config(
    config: ModelConfig | None,
    *,
    defaults: ConfigDefaults,
    detected_framework: Framework | None,
    uncompressed_bytes: int,
    region: str,
    has_inference_code: bool = False,
) -> ResolvedConfig:
    """Merge modeldrop.json over the stack defaults, the detected framework and the model's size.

    Custom code with no recognised artifact (code/inference.py plus, say, weights.npy) is served on the
    scikit-learn image, the smallest prebuilt Python with numpy and scipy, unless modeldrop.json says
    otherwise.
    """
    config = config or ModelConfig()
    framework = config.framework or detected_framework
    if framework is None and not config.image and has_inference_code:
        framework = CUSTOM_CODE_FRAMEWORK
    if config.image:
        image = config.image
        framework = framework or framework_from_image(image)
        version = config.framework_version
    else:
        if framework is None:
            raise _rejected(
                f"{CONFIG_SOURCE}: framework is needed: no model file told which framework the model uses "
                f"and there is no code/inference.py; set framework ({', '.join(f.value for f in Framework)}) "
                "or image"
            )
        version = config.framework_version or default_version(framework)
        try:
            image = image_for(framework, version, region)
        except UnknownFrameworkImage as error:
            raise _rejected(f"{CONFIG_SOURCE}: {error}") from None

    sized = memory_for_model_size(uncompressed_bytes)
    if config.memory_mb is not None:
        model_mb = math.ceil(uncompressed_bytes / 2**20)
        if config.memory_mb < model_mb:
            raise _rejected(
                f"{CONFIG_SOURCE}: memory_mb {config.memory_mb} is smaller than the model "
                f"({model_mb} MB uncompressed)"
            )
        memory = config.memory_mb
    else:
        memory = max(defaults.memory_mb or 0, sized)

    max_concurrency = config.max_concurrency or defaults.max_concurrency
    if config.provisioned_concurrency is not None:
        provisioned = config.provisioned_concurrency
        if provisioned > max_concurrency:
            raise _rejected(
                f"{CONFIG_SOURCE}: provisioned_concurrency ({provisioned}) must not exceed "
                f"max_concurrency ({max_concurrency})"
            )
    else:
        # A stack default above this model's own max_concurrency is capped, not an error.
        provisioned = min(defaults.provisioned_concurrency, max_concurrency)

    return ResolvedConfig(
        framework=framework,
        framework_version=version,
        image=image,
        memory_mb=memory,
        max_concurrency=max_concurrency,
        provisioned_concurrency=provisioned,
        environment=dict(config.environment),
        smoke_test=config.smoke_test,
        rollout=config.rollout,
        approval="manual" if config.approval == "manual" else None,
        max_concurrency_set=config.max_concurrency is not None,
    )
