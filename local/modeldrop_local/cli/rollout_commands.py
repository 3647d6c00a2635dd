"""`modeldrop promote NAME` and `modeldrop abort NAME`: end a canary or shadow bake by hand."""

from __future__ import annotations

from typing import Annotated, Literal

import typer

from modeldrop_local.cli.errors import fail, reaching_the_stack
from modeldrop_local.cli.stack_commands import EndpointOption, StackOption
from modeldrop_local.stack import DEFAULT_STACK_NAME
from modeldrop_local.stack_client import RestApiError, StackClient

rollout_app = typer.Typer()
NameArgument = Annotated[str, typer.Argument(help="The model whose candidate is baking.")]


def _end_bake(
    name: str, decision: Literal["promote", "abort"], endpoint_url: str | None, stack_name: str
) -> None:
    stack = StackClient(endpoint_url, stack_name)
    try:
        rollout = stack.end_bake(name, decision)
    except RestApiError as refusal:
        raise fail(f"{decision} of {name} refused: {refusal}") from refusal
    figures = "; ".join(
        f"v{item.version}: {item.requests} requests, {item.errors} errors"
        + (f", p99 {item.p99_ms:.1f} ms" if item.p99_ms is not None else "")
        for item in rollout.versions
    )
    what = "promotion requested" if decision == "promote" else "aborted"
    typer.echo(f"{name} v{rollout.candidate_version} ({rollout.strategy}): {what}, rollout {rollout.state}")
    if figures:
        typer.echo(f"  last figures: {figures}")
    typer.echo(f"  follow it with: modeldrop status {name}")


@rollout_app.command()
@reaching_the_stack
def promote(
    name: NameArgument, endpoint_url: EndpointOption = None, stack_name: StackOption = DEFAULT_STACK_NAME
) -> None:
    """Promote NAME's baking candidate now (POST /models/NAME/promote), whatever its figures."""
    _end_bake(name, "promote", endpoint_url, stack_name)


@rollout_app.command()
@reaching_the_stack
def abort(
    name: NameArgument, endpoint_url: EndpointOption = None, stack_name: StackOption = DEFAULT_STACK_NAME
) -> None:
    """Abort NAME's bake (POST /models/NAME/abort): the candidate stops taking traffic and is deleted."""
    _end_bake(name, "abort", endpoint_url, stack_name)
