"""How `modeldrop deploy` and `rollback` show a deployment they follow.

On a terminal, a live status line (rich's spinner) with the current state and the seconds elapsed,
so the minutes an endpoint spends Creating on AWS are not silence; each transition is also printed as
a line of its own above it, so the history stays on screen. Anywhere else (tests, CI logs, a pipe)
only the transitions, one plain line each: no control codes, nothing repeated every poll.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import typer
from rich.console import Console
from rich.markup import escape
from rich.status import Status


class PlainDisplay:
    """One line per transition, nothing while waiting."""

    def transition(self, line: str) -> None:
        typer.echo(line)

    def waiting(self, line: str, elapsed_s: float) -> None:
        return None


class LiveDisplay:
    """A spinner whose text is the current state and the time since the follow started."""

    def __init__(self, console: Console) -> None:
        self.console = console
        self.status = Status("", console=console)

    def transition(self, line: str) -> None:
        self.console.print(line, highlight=False, markup=False)

    def waiting(self, line: str, elapsed_s: float) -> None:
        self.status.update(status_text(line, elapsed_s))


def status_text(line: str, elapsed_s: float) -> str:
    """`v1 Deploying (endpoint Creating) · 2m05s`; rich markup in the line is not interpreted."""
    minutes, seconds = divmod(int(elapsed_s), 60)
    elapsed = f"{minutes}m{seconds:02d}s" if minutes else f"{seconds}s"
    return f"{escape(line)} · {elapsed}"


@contextmanager
def follow_display(console: Console | None = None) -> Iterator[PlainDisplay | LiveDisplay]:
    console = console or Console()
    if not console.is_terminal:
        yield PlainDisplay()
        return
    display = LiveDisplay(console)
    with display.status:
        yield display
