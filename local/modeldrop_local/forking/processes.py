"""What a host does to a worker process it got from a fork server: kill it (with what it forked),
and say how it ended."""

from __future__ import annotations

import contextlib
import os
import signal


def kill_process_group(pid: int, *, leader_alive: bool = True) -> None:
    """SIGKILL a worker and every process it forked (a worker of an isolating server leads its own
    process group).

    With `leader_alive=False` (the worker was reaped, its pid free for reuse) only the group is
    signalled: a group outlives its leader while any member runs, and is gone with the last one.
    """
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, signal.SIGKILL)
    if leader_alive:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)


def describe_exit(status: int | None) -> str:
    """A wait status as a reason: `exit code 1`, `killed by signal SIGKILL`."""
    if status is None:
        return "exit status unknown"
    if os.WIFSIGNALED(status):
        number = os.WTERMSIG(status)
        try:
            return f"killed by signal {signal.Signals(number).name}"
        except ValueError:
            return f"killed by signal {number}"
    return f"exit code {os.WEXITSTATUS(status)}"
