"""A deployment's reason for an unexpected error: one line, what failed; never a traceback."""

from __future__ import annotations

from pathlib import Path

from modeldrop.reasons import error_summary, raised_at


def test_an_error_is_summed_up_by_its_type_and_first_line() -> None:
    assert error_summary(ValueError("bad value\n  File 'x.py', line 3\nmore")) == "ValueError: bad value"


def test_an_error_without_a_message_is_its_type() -> None:
    assert error_summary(KeyboardInterrupt()) == "KeyboardInterrupt"


def test_a_long_message_is_cut_short() -> None:
    summary = error_summary(RuntimeError("x" * 1000))
    assert len(summary) == 240
    assert summary.endswith("...")


def test_where_an_error_was_raised_prefers_the_models_own_code(tmp_path: Path) -> None:
    # Given an error raised by a library function that the model's own code called
    model_code = tmp_path / "code" / "inference.py"
    model_code.parent.mkdir()
    model_code.write_text("def model_fn(model_dir):\n    return int(model_dir)\n")
    namespace: dict[str, object] = {}
    exec(compile(model_code.read_text(), str(model_code), "exec"), namespace)
    try:
        namespace["model_fn"]("not a number")  # type: ignore[operator]
    except ValueError as error:
        # Then the frame named is the model's, relative to the model directory
        assert raised_at(error, prefer_under=str(tmp_path)) == "code/inference.py, line 2, in model_fn"
        # and without a model directory, the innermost frame
        assert raised_at(error) == f"{model_code}, line 2, in model_fn"
