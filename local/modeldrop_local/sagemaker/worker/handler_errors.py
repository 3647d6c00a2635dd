"""The errors of a model's handler chain, with the HTTP status the caller should see."""

from __future__ import annotations


class HandlerError(Exception):
    """An error with the HTTP status the caller should see."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


class ModelLoadError(Exception):
    """The model could not be loaded; the message is user-facing."""


def bad_input(error: Exception) -> HandlerError:
    """A model's refusal of the input (wrong feature count, dtype, shape): the caller's fault, 400."""
    return HandlerError(400, str(error) or type(error).__name__)
