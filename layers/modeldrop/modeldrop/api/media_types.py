"""Which media types travel as binary through API Gateway.

API Gateway (REST) base64-encodes a request body whose Content-Type matches one of the API's
`x-amazon-apigateway-binary-media-types`, and decodes a base64 proxy response back to bytes when the
request's Accept or the response's Content-Type matches one. Everything else is treated as UTF-8 text.
`*/*` would make JSON binary too, so the list names the binary formats SageMaker containers speak.
This tuple and the OpenAPI document must agree (a unit test holds them together); the matching rule
is modeldrop.content_types.is_binary, which the local REST front applies to the OpenAPI list too.
"""

from __future__ import annotations

from modeldrop.content_types import is_binary

BINARY_MEDIA_TYPES: tuple[str, ...] = (
    "application/x-npy",
    "application/x-npz",
    "application/octet-stream",
    "application/x-recordio-protobuf",
    "application/x-protobuf",
    "application/x-image",
    "image/*",
)


def is_binary_media_type(media_type: str | None) -> bool:
    """True when API Gateway carries this media type as binary (base64 in the proxy event)."""
    return is_binary(media_type, BINARY_MEDIA_TYPES)
