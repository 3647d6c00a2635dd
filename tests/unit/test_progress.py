"""How `modeldrop deploy` shows the deployment it follows: live on a terminal, plain lines elsewhere."""

from __future__ import annotations

import io

import pytest
from modeldrop_local.progress import LiveDisplay, PlainDisplay, follow_display, status_text
from rich.console import Console


@pytest.mark.parametrize(
    ("elapsed_s", "text"),
    [
        (0.4, "v1 Deploying (endpoint Creating) · 0s"),
        (59.9, "v1 Deploying (endpoint Creating) · 59s"),
        (125.0, "v1 Deploying (endpoint Creating) · 2m05s"),
    ],
)
def test_the_live_line_shows_the_state_and_the_time_elapsed(elapsed_s: float, text: str) -> None:
    assert status_text("v1 Deploying (endpoint Creating)", elapsed_s) == text


def test_a_reason_with_brackets_is_shown_as_written() -> None:
    # Given a reason holding what rich would read as markup
    line = "v2 Failed: [bold] is not a model"
    # When it is rendered as the live line
    rendered = Console(file=io.StringIO(), force_terminal=True, width=200, highlight=False)
    rendered.print(status_text(line, 3))
    # Then the brackets are printed, not interpreted
    assert "v2 Failed: [bold] is not a model · 3s" in rendered.file.getvalue()  # type: ignore[attr-defined]


def test_on_a_terminal_the_status_is_live_and_transitions_are_printed_above_it() -> None:
    # Given a terminal
    output = io.StringIO()
    console = Console(file=output, force_terminal=True, width=120)
    # When a deployment is followed through two transitions with polls between them
    with follow_display(console) as display:
        assert isinstance(display, LiveDisplay)
        display.transition("v1 Deploying (endpoint Creating)")
        display.waiting("v1 Deploying (endpoint Creating)", 42.0)
        display.transition("v1 InService (endpoint InService)")
    # Then both transitions are on screen, and the live line carried the elapsed time
    screen = output.getvalue()
    assert "v1 Deploying (endpoint Creating)\n" in screen
    assert "v1 InService (endpoint InService)" in screen
    assert "v1 Deploying (endpoint Creating) · 42s" in screen


def test_off_a_terminal_only_the_transitions_are_printed_plainly(capsys: pytest.CaptureFixture[str]) -> None:
    # Given output that is not a terminal (a pipe, a CI log)
    console = Console(file=io.StringIO(), force_terminal=False)
    # When a deployment is followed
    with follow_display(console) as display:
        assert isinstance(display, PlainDisplay)
        display.transition("v1 Deploying (endpoint Creating)")
        display.waiting("v1 Deploying (endpoint Creating)", 42.0)
        display.transition("v1 InService (endpoint InService)")
    # Then each transition is one plain line, and the polls print nothing
    assert capsys.readouterr().out == "v1 Deploying (endpoint Creating)\nv1 InService (endpoint InService)\n"
