"""Content types are parsed in one place (modeldrop.content_types), and API Gateway's binary rule is
one rule for the Api function and the local REST front."""

from __future__ import annotations

import pytest
from modeldrop.api.media_types import BINARY_MEDIA_TYPES, is_binary_media_type
from modeldrop.content_types import MediaType, accept_list, essence, is_binary, matches, parse, quality


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("Application/JSON; Charset=UTF-8", MediaType("application/json", (("charset", "UTF-8"),))),
        (' text/csv ; label_size="2"', MediaType("text/csv", (("label_size", "2"),))),
        ("json", MediaType("json")),  # no slash: kept as named, for the caller to refuse by name
        ("", MediaType("")),
        (None, MediaType("")),
        ("   ", MediaType("")),
    ],
)
def test_a_content_type_parses_to_its_essence_and_parameters(value: str | None, expected: MediaType) -> None:
    # When a Content-Type value is parsed
    parsed = parse(value)
    # Then its essence is lowercased and its parameters unquoted, names lowercased
    assert parsed == expected
    assert essence(value) == expected.essence


def test_accept_lists_keep_their_order_and_q_values() -> None:
    # Given an Accept header with q values, one unreadable
    ranges = accept_list("text/csv;q=0.5, application/json , */*;q=bad,")
    # Then each element is a media range with its quality (an unreadable q is not acceptable)
    assert [item.essence for item in ranges] == ["text/csv", "application/json", "*/*"]
    assert [quality(item) for item in ranges] == [0.5, 1.0, 0.0]


@pytest.mark.parametrize(
    ("media_type", "media_range", "expected"),
    [
        ("image/png", "image/*", True),
        ("image/png", "*/*", True),
        ("application/x-npy", "Application/X-NPY", True),
        ("application/json", "image/*", False),
        ("application/x-npy", "application/x-npz", False),
    ],
)
def test_media_ranges_match_as_in_http(media_type: str, media_range: str, expected: bool) -> None:
    assert matches(media_type, media_range) is expected


@pytest.mark.parametrize(
    "content_type",
    ["image/png", "application/x-npy; charset=binary", "application/json", "text/csv", "", None, "*/*"],
)
def test_the_api_and_the_rest_front_apply_one_binary_rule(content_type: str | None) -> None:
    # Given the API's binary media types, as the REST front reads them from the OpenAPI document
    listed = list(BINARY_MEDIA_TYPES)
    # Then the Api function's rule and the front's agree on every content type
    assert is_binary_media_type(content_type) is is_binary(content_type, listed)
    assert is_binary("image/png", listed) and not is_binary("application/json", listed)
