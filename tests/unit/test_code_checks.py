"""modeldrop.code_checks: handler code whose syntax is newer than the image's Python is refused at upload."""

from __future__ import annotations

import pytest
from modeldrop.code_checks import check_code_syntax
from modeldrop.rejection import RejectionCode, UploadRejected

MATCH = b"def model_fn(model_dir):\n    match model_dir:\n        case _:\n            return None\n"
PARENTHESISED_WITH = b"def f():\n    with (open('a') as a, open('b') as b):\n        pass\n"
EXPRESSION_DECORATOR = b"handlers = [staticmethod]\n\n\n@handlers[0]\ndef f():\n    pass\n"
STARRED_SUBSCRIPT = b"def f(table, keys):\n    return table[*keys]\n"
EXCEPT_STAR = b"try:\n    pass\nexcept* ValueError:\n    pass\n"
WALRUS = b"if (n := 1):\n    pass\n"


def refusal(sources: dict[str, bytes], python: str) -> str:
    with pytest.raises(UploadRejected) as refused:
        check_code_syntax(sources, python, "sklearn 1.2-1")
    assert refused.value.code is RejectionCode.PYTHON
    return refused.value.reason


@pytest.mark.parametrize(
    ("source", "python", "reason"),
    [
        (
            MATCH,
            "3.9",
            "code/inference.py line 2: Pattern matching is only supported in Python 3.10 and greater; the "
            "sklearn 1.2-1 image runs Python 3.9: write the code for Python 3.9, or choose an image with a "
            "newer Python",
        ),
        (
            PARENTHESISED_WITH,
            "3.8",
            "code/inference.py line 2: Parenthesized context managers are only supported in Python 3.9 and "
            "greater; the sklearn 1.2-1 image runs Python 3.8: write the code for Python 3.8, or choose an "
            "image with a newer Python",
        ),
        (
            EXCEPT_STAR,
            "3.10",
            "code/inference.py line 3: Exception groups are only supported in Python 3.11 and greater; the "
            "sklearn 1.2-1 image runs Python 3.10: write the code for Python 3.10, or choose an image with a "
            "newer Python",
        ),
        (
            WALRUS,
            "3.7",
            "code/inference.py line 1: Assignment expressions are only supported in Python 3.8 and greater; "
            "the sklearn 1.2-1 image runs Python 3.7: write the code for Python 3.7, or choose an image with "
            "a newer Python",
        ),
        # Not gated by ast's feature_version: detected explicitly
        (
            EXPRESSION_DECORATOR,
            "3.8",
            "code/inference.py line 4: a decorator that is not a dotted name or call (Python 3.9) is not "
            "supported in Python 3.8, which the sklearn 1.2-1 image runs: write the code for Python 3.8, or "
            "choose an image with a newer Python",
        ),
        (
            STARRED_SUBSCRIPT,
            "3.9",
            "code/inference.py line 2: a starred expression in a subscript (Python 3.11) is not supported in "
            "Python 3.9, which the sklearn 1.2-1 image runs: write the code for Python 3.9, or choose an "
            "image with a newer Python",
        ),
    ],
)
def test_syntax_newer_than_the_image_python_is_refused_naming_file_and_line(
    source: bytes, python: str, reason: str
) -> None:
    # Given handler code using syntax newer than the image's Python / When checked / Then refused exactly
    assert refusal({"code/inference.py": source}, python) == reason


@pytest.mark.parametrize(
    ("source", "python"),
    [
        # CPython 3.9's parser already took parenthesised context managers: they run on a 3.9 image
        (PARENTHESISED_WITH, "3.9"),
        (MATCH, "3.10"),
        (EXPRESSION_DECORATOR, "3.9"),
        (STARRED_SUBSCRIPT, "3.11"),
        (WALRUS, "3.8"),
    ],
)
def test_the_same_syntax_passes_where_the_image_python_has_it(source: bytes, python: str) -> None:
    check_code_syntax({"code/inference.py": source}, python, "sklearn 1.2-1")


def test_every_code_file_is_checked_and_a_plain_syntax_error_is_refused_too() -> None:
    # Given a valid handler and a helper module with a typo
    sources = {"code/inference.py": b"import helpers\n", "code/lib/helpers.py": b"def f(:\n    pass\n"}

    # When checked / Then the helper is named with its line
    assert refusal(sources, "3.9").startswith("code/lib/helpers.py line 1: invalid syntax")
