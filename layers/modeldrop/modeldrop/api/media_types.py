"""Which media types travel as binary through API Gateway.

API Gateway (REST) base64-encodes a request body whose Content-Type matches one of the API's
`x-amazon-apigateway-binary-media-types`, and decodes a base64 proxy response back to bytes when the
request's Accept or the response's Content-Type matches one. Everything else is treated as UTF-8 text.
`*/*` would make JSON binary too, so the list names the binary formats SageMaker containers speak.
This tuple and the OpenAPI document must agree (a unit test holds them together).
"""

from __future__ import annotations

BINARY_MEDIA_TYPES: tuple[str, ...] = (
    "application/x-npy",
    "application/x-npz",
    "application/octet-stream",
    "application/x-recordio-protobuf",
    "application/x-protobuf",
    "application/x-image",
    "image/*",
)


def essence(media_type: str | None) -> str:
    """`Application/JSON; charset=utf-8` → `application/json`."""
    if not media_type:
        return ""
    return media_type.split(";", 1)[0].strip().lower()


def is_binary_media_type(media_type: str | None) -> bool:
    """True when API Gateway carries this media type as binary (base64 in the proxy event)."""
    wanted = essence(media_type)
    if not wanted:
        return False
    major = wanted.split("/", 1)[0]
    return any(
        wanted == binary or (binary.endswith("/*") and binary[:-2] == major) for binary in BINARY_MEDIA_TYPES
    )
