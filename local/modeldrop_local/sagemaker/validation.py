"""Request validation driven by botocore's SageMaker service model (the same shapes boto3 uses).

Every constraint (required members, types, lengths, patterns, enums, ranges) is read from the
model rather than written twice; the serverless rules that the model cannot express (memory in
1 GB steps, provisioned ≤ max concurrency, serverless variants only) are checked on top. Messages
follow AWS's wording: "1 validation error detected: Value 'x' at 'endpointName' failed to satisfy
constraint: Member must satisfy regular expression pattern: ...".
"""

from __future__ import annotations

from functools import cache
from typing import Any

import botocore.session
import regex
from botocore.model import ListShape, MapShape, OperationModel, ServiceModel, Shape, StructureShape

from modeldrop_local.sagemaker.errors import SageMakerError, serialization, validation

SERVERLESS_MEMORY_SIZES = (1024, 2048, 3072, 4096, 5120, 6144)


@cache
def service_model() -> ServiceModel:
    return botocore.session.get_session().get_service_model("sagemaker")


def operation_model(name: str) -> OperationModel:
    return service_model().operation_model(name)


@cache
def _pattern(source: str) -> regex.Pattern[str] | None:
    # Patterns are Java regexes; the `regex` module understands their \p{...} classes. The few that
    # use Java-only surrogate ranges belong to shapes no operation served here reaches.
    try:
        return regex.compile(source)
    except regex.error:
        return None


def _camel(name: str) -> str:
    return name[:1].lower() + name[1:]


def _show(value: Any) -> str:
    return str(value) if not isinstance(value, str) else value


class _Checker:
    def __init__(self) -> None:
        self.errors: list[str] = []

    def fail(self, value: Any, path: str, constraint: str) -> None:
        shown = "null" if value is None else f"'{_show(value)}'"
        self.errors.append(
            f"Value {shown} at '{path}' failed to satisfy constraint: Member must {constraint}"
        )

    def check(self, shape: Shape, value: Any, path: str) -> None:
        kind = shape.type_name
        meta = shape.metadata
        if kind == "structure":
            assert isinstance(shape, StructureShape)
            if not isinstance(value, dict):
                raise serialization(
                    f"Expected an object at '{path or 'request'}', got {type(value).__name__}"
                )
            for name in shape.required_members:
                if value.get(name) is None:
                    self.fail(None, self._join(path, name), "not be null")
            for name, member in shape.members.items():
                if value.get(name) is not None:
                    self.check(member, value[name], self._join(path, name))
        elif kind == "list":
            assert isinstance(shape, ListShape)
            if not isinstance(value, list):
                raise serialization(f"Expected a list at '{path}', got {type(value).__name__}")
            self._length(value, len(value), meta, path)
            for index, item in enumerate(value, start=1):
                self.check(shape.member, item, f"{path}.{index}.member")
        elif kind == "map":
            assert isinstance(shape, MapShape)
            if not isinstance(value, dict):
                raise serialization(f"Expected a map at '{path}', got {type(value).__name__}")
            self._length(value, len(value), meta, path)
            for key, item in value.items():
                self.check(shape.key, key, f"{path}.{key}.member.key")
                self.check(shape.value, item, f"{path}.{key}.member.value")
        elif kind == "string":
            if not isinstance(value, str):
                raise serialization(f"Expected a string at '{path}', got {type(value).__name__}")
            self._length(value, len(value), meta, path)
            if "enum" in meta and value not in meta["enum"]:
                self.fail(value, path, f"satisfy enum value set: [{', '.join(meta['enum'])}]")
            pattern = _pattern(meta["pattern"]) if "pattern" in meta else None
            if pattern is not None and pattern.fullmatch(value) is None:
                self.fail(value, path, f"satisfy regular expression pattern: {meta['pattern']}")
        elif kind in {"integer", "long"}:
            if isinstance(value, bool) or not isinstance(value, int):
                raise serialization(f"Expected an integer at '{path}', got {type(value).__name__}")
            self._range(value, meta, path)
        elif kind in {"float", "double"}:
            if isinstance(value, bool) or not isinstance(value, int | float):
                raise serialization(f"Expected a number at '{path}', got {type(value).__name__}")
            self._range(value, meta, path)
        elif kind == "boolean" and not isinstance(value, bool):
            raise serialization(f"Expected a boolean at '{path}', got {type(value).__name__}")

    @staticmethod
    def _join(path: str, name: str) -> str:
        return f"{path}.{_camel(name)}" if path else _camel(name)

    def _length(self, value: Any, length: int, meta: dict[str, Any], path: str) -> None:
        if "min" in meta and length < meta["min"]:
            self.fail(value, path, f"have length greater than or equal to {meta['min']}")
        if "max" in meta and length > meta["max"]:
            self.fail(value, path, f"have length less than or equal to {meta['max']}")

    def _range(self, value: float, meta: dict[str, Any], path: str) -> None:
        if "min" in meta and value < meta["min"]:
            self.fail(value, path, f"have value greater than or equal to {meta['min']}")
        if "max" in meta and value > meta["max"]:
            self.fail(value, path, f"have value less than or equal to {meta['max']}")


def _raise_if_any(errors: list[str]) -> None:
    if errors:
        count = len(errors)
        noun = "error" if count == 1 else "errors"
        raise validation(f"{count} validation {noun} detected: " + "; ".join(errors))


def validate_request(operation: str, params: dict[str, Any]) -> None:
    """Raise ValidationException (or SerializationException) unless params fit the operation's input."""
    checker = _Checker()
    input_shape = operation_model(operation).input_shape
    if input_shape is not None:
        checker.check(input_shape, params, "")
    _raise_if_any(checker.errors)


def validate_serverless_variants(variants: list[dict[str, Any]]) -> None:
    """The rules of SageMaker Serverless Inference that the service model cannot express."""
    if len(variants) != 1:
        raise validation(
            "The local SageMaker serves exactly one production variant per endpoint config; "
            f"got {len(variants)}."
        )
    variant = variants[0]
    serverless = variant.get("ServerlessConfig")
    if serverless is None:
        raise validation(
            f"ProductionVariant '{variant.get('VariantName')}' has no ServerlessConfig: the local SageMaker "
            "serves Serverless Inference only (instance-based variants are not emulated)."
        )
    errors: list[str] = []
    memory = serverless.get("MemorySizeInMB")
    path = "productionVariants.1.member.serverlessConfig"
    if memory not in SERVERLESS_MEMORY_SIZES:
        errors.append(
            f"Value '{memory}' at '{path}.memorySizeInMB' failed to satisfy constraint: Member must satisfy "
            f"enum value set: [{', '.join(str(size) for size in SERVERLESS_MEMORY_SIZES)}]"
        )
    provisioned = serverless.get("ProvisionedConcurrency")
    maximum = serverless.get("MaxConcurrency")
    if provisioned is not None and maximum is not None and provisioned > maximum:
        errors.append(
            f"ProvisionedConcurrency ({provisioned}) must be less than or equal to "
            f"MaxConcurrency ({maximum}) "
            f"for ProductionVariant '{variant.get('VariantName')}'"
        )
    _raise_if_any(errors)
    if not variant.get("ModelName"):
        raise validation(f"ProductionVariant '{variant.get('VariantName')}' needs a ModelName.")


__all__ = [
    "SERVERLESS_MEMORY_SIZES",
    "SageMakerError",
    "operation_model",
    "service_model",
    "validate_request",
    "validate_serverless_variants",
]
