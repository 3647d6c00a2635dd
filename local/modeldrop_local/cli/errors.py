"""What a command that reaches a stack says when it cannot: one clear line and exit code 1."""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import ParamSpec, TypeVar

import httpx
import typer
from botocore.exceptions import EndpointConnectionError, NoCredentialsError, NoRegionError

from modeldrop_local.credentials import is_loopback
from modeldrop_local.stack_client import RestApiError, StackNotFound

P = ParamSpec("P")
R = TypeVar("R")


def fail(message: str) -> typer.Exit:
    typer.secho(message, fg=typer.colors.RED, err=True)
    return typer.Exit(1)


def _where(endpoint_url: str | None) -> str:
    return endpoint_url or "AWS"


def reaching_the_stack(command: Callable[P, R]) -> Callable[P, R]:
    """One clear line, exit code 1, instead of a traceback when the cloud or the stack is not there."""

    @functools.wraps(command)
    def run(*args: P.args, **kwargs: P.kwargs) -> R:
        endpoint_url = kwargs.get("endpoint_url")
        url = str(endpoint_url) if endpoint_url else None
        try:
            return command(*args, **kwargs)
        except (EndpointConnectionError, httpx.ConnectError) as error:
            target = url if isinstance(error, EndpointConnectionError) and url else _failed_url(error)
            hint = ": is `modeldrop local up` running?" if is_loopback(target) else f" ({error})"
            raise fail(f"cannot reach {target}{hint}") from error
        except StackNotFound as error:
            raise fail(
                f"no stack named {error} at {_where(url)} "
                "(choose one with --stack-name or AWS_SAM_STACK_NAME)"
            ) from error
        except (NoCredentialsError, NoRegionError) as error:
            raise fail(f"cannot call {_where(url)}: {error}") from error
        except RestApiError as error:
            raise fail(f"the REST API answered {error.status_code}: {error}") from error

    return run


def _failed_url(error: Exception) -> str:
    if isinstance(error, EndpointConnectionError):
        return str(error.kwargs.get("endpoint_url", ""))
    try:
        url = error.request.url  # type: ignore[attr-defined]  # httpx: the request that could not be sent
    except RuntimeError:
        return str(error)
    return f"{url.scheme}://{url.netloc.decode()}"
