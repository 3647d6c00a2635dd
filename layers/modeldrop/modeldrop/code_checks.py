"""The handler code against the image's Python: syntax newer than the image runs is refused at upload.

Every code/**/*.py the tarball holds (read in inspect_tarball's single pass) is parsed with
`ast.parse(feature_version=...)` for the image's Python (modeldrop.image_libraries, with its source).
feature_version is best effort (Python's ast docs: "the parser will try to parse using that version's
grammar"; only some constructs are gated). Checked on this machine's Python 3.11, with (3, 8)/(3, 9):
  - `match` is refused below (3, 10) ("Pattern matching is only supported in Python 3.10 and greater");
  - parenthesised context managers are refused below (3, 9): CPython 3.9's new parser already accepted
    them (documented only in 3.10), so on a 3.9 image they work, and are let through;
  - `except*` is refused below (3, 11); walrus, positional-only parameters and f-string `=` below (3, 8).
Not gated, so detected here explicitly: decorators that are any expression (PEP 614, Python 3.9) and
starred expressions in a subscript (PEP 646, Python 3.11). Syntax this machine's parser itself rejects
(3.12's type parameters, or a plain typo) is refused too: it cannot run on the image either.
Runtime differences (X | Y outside annotations, new standard-library names) are not syntax: not seen here.
"""

from __future__ import annotations

import ast
from collections.abc import Mapping

from modeldrop.rejection import RejectionCode, UploadRejected


def _version(python: str) -> tuple[int, int]:
    major, minor = python.split(".")[:2]
    return int(major), int(minor)


def _ungated(tree: ast.AST, target: tuple[int, int]) -> tuple[int, str] | None:
    """(line, what) of the first construct newer than target that feature_version lets through."""
    for node in ast.walk(tree):
        if target < (3, 9) and isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
            for decorator in node.decorator_list:
                if not _pre_pep614_decorator(decorator):
                    return decorator.lineno, "a decorator that is not a dotted name or call (Python 3.9)"
        if target < (3, 11) and isinstance(node, ast.Subscript):
            items = node.slice.elts if isinstance(node.slice, ast.Tuple) else [node.slice]
            if any(isinstance(item, ast.Starred) for item in items):
                return node.lineno, "a starred expression in a subscript (Python 3.11)"
    return None


def _pre_pep614_decorator(decorator: ast.expr) -> bool:
    # Python 3.8's grammar: decorator: '@' dotted_name [ '(' [arglist] ')' ]
    target = decorator.func if isinstance(decorator, ast.Call) else decorator
    while isinstance(target, ast.Attribute):
        target = target.value
    return isinstance(target, ast.Name)


# The gated constructs whose SyntaxError points at the end of the statement (Python 3.11 reports a `match`
# block at its last line): the construct's own first line is named instead.
def _construct_line(kind: str, node: ast.AST) -> int | None:
    if kind == "Pattern matching" and isinstance(node, ast.Match):
        return node.lineno
    if kind == "Parenthesized context managers" and isinstance(node, ast.With | ast.AsyncWith):
        return node.lineno
    if kind == "Exception groups" and isinstance(node, ast.TryStar) and node.handlers:
        return node.handlers[0].lineno
    if kind == "Assignment expressions" and isinstance(node, ast.NamedExpr):
        return node.lineno
    return None


_GATED = ("Pattern matching", "Parenthesized context managers", "Exception groups", "Assignment expressions")


def _statement_line(source: bytes, error: SyntaxError) -> int | None:
    """The first line of the construct a feature-version SyntaxError is about, when this Python parses it."""
    kind = next((prefix for prefix in _GATED if (error.msg or "").startswith(prefix)), None)
    last = error.lineno
    if kind is None or last is None:
        return last
    try:
        tree = ast.parse(source)
    except (SyntaxError, ValueError):
        return last
    starts = [line for node in ast.walk(tree) if (line := _construct_line(kind, node)) and line <= last]
    return max(starts, default=last)


def check_code_syntax(sources: Mapping[str, bytes], python: str, image: str) -> None:
    """UploadRejected (code python) naming the file and line whose syntax `image`'s Python cannot parse."""
    target = _version(python)
    for name in sorted(sources):
        try:
            tree = ast.parse(sources[name], filename=name, feature_version=target)
        except SyntaxError as error:
            raise UploadRejected(
                RejectionCode.PYTHON,
                f"{name} line {_statement_line(sources[name], error)}: {error.msg}; the {image} image runs "
                f"Python {python}: write the code for Python {python}, or choose an image with a newer "
                "Python",
            ) from None
        except ValueError as error:  # null bytes: Python 3.11's parser raises ValueError, not SyntaxError
            raise UploadRejected(RejectionCode.PYTHON, f"{name} is not Python source: {error}") from None
        found = _ungated(tree, target)
        if found is not None:
            line, what = found
            raise UploadRejected(
                RejectionCode.PYTHON,
                f"{name} line {line}: {what} is not supported in Python {python}, which the {image} image "
                f"runs: write the code for Python {python}, or choose an image with a newer Python",
            )
