"""Content types and Accept headers, parsed once: the media type, its parameters, and which media
ranges match it (RFC 9110 sections 8.3.1 and 12.5.1).

The parsing is the standard library's (email.message, the MIME header parser: quoting, spacing and
case of parameter names), and matching is the media-range rule every HTTP server applies: `*/*`
matches all, `type/*` matches its type, anything else matches itself, case-insensitively.
API Gateway's binary media types are media ranges too, so `is_binary` is that rule over a list.

Standard library only: the local SageMaker's workers import it under the pinned interpreters of the
image environments, which have none of the layer's dependencies.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from email.message import Message
from email.utils import collapse_rfc2231_value
from functools import lru_cache


@dataclass(frozen=True)
class MediaType:
    """`Text/CSV; Label_Size="1"` → essence `text/csv`, parameters (("label_size", "1"),)."""

    essence: str  # type/subtype, lowercased; "" when the value names none
    parameters: tuple[tuple[str, str], ...] = ()  # names lowercased, values unquoted, in order

    def parameter(self, name: str, default: str | None = None) -> str | None:
        return next((value for key, value in self.parameters if key == name), default)

    @property
    def main_type(self) -> str:
        return self.essence.partition("/")[0]


@lru_cache(maxsize=512)  # keyed on client input, bounded; a client sends the same few values
def parse(value: str | None) -> MediaType:
    """One Content-Type value (or one element of an Accept list). An empty or missing value has an
    empty essence; one without a slash (`json`) keeps what it names, lowercased, for the caller to
    refuse by name (email.message would read it as text/plain)."""
    if not value or not value.strip():
        return MediaType("")
    header = Message()
    header["Content-Type"] = value
    (essence, _), *parameters = header.get_params(header="Content-Type") or [("", "")]
    return MediaType(
        essence.strip().lower(),
        tuple(
            (name.strip().lower(), collapse_rfc2231_value(raw)) for name, raw in parameters if name.strip()
        ),
    )


def essence(value: str | None) -> str:
    """`Application/JSON; charset=utf-8` → `application/json`; empty or missing → ``."""
    return parse(value).essence


def accept_list(value: str | None) -> list[MediaType]:
    """The media ranges of an Accept header, in the order written (q values are parameters)."""
    return [parse(item) for item in (value or "").split(",") if item.strip()]


def quality(media_range: MediaType) -> float:
    """An Accept element's q (1 when absent; 0, i.e. not acceptable, when unreadable)."""
    try:
        return float(media_range.parameter("q", "1") or "1")
    except ValueError:
        return 0.0


def matches(media_type: str, media_range: str) -> bool:
    """Whether a media type (an essence) falls in a media range: `*/*`, `type/*`, or itself."""
    media_type, media_range = media_type.lower(), media_range.lower()
    if media_range == "*/*":
        return True
    if media_range.endswith("/*"):
        return media_type.partition("/")[0] == media_range[:-2]
    return media_type == media_range


def is_binary(content_type: str | None, binary_media_types: Iterable[str]) -> bool:
    """API Gateway's rule: a body travels as binary (base64 in the proxy event) when its media type
    matches one of the API's binaryMediaTypes (`x-amazon-apigateway-binary-media-types`)."""
    wanted = essence(content_type)
    return bool(wanted) and any(matches(wanted, binary) for binary in binary_media_types)
