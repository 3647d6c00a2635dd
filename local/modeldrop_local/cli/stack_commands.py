"""The commands on a deployed stack: deploy, status, invoke, approve, rollback, logs.

Each reaches the stack through its Outputs (`stack_client.StackClient`), on AWS or on the local cloud.
"""

from __future__ import annotations

import collections
from pathlib import Path
from typing import Annotated

import typer
from modeldrop import naming
from modeldrop.rejection import UploadRejected

from modeldrop_local.cli.errors import fail, reaching_the_stack
from modeldrop_local.progress import follow_display
from modeldrop_local.stack import DEFAULT_STACK_NAME
from modeldrop_local.stack_client import FINAL_STATUSES, RestApiError, StackClient

stack_app = typer.Typer()

EndpointOption = Annotated[
    str | None, typer.Option("--endpoint-url", envvar="AWS_ENDPOINT_URL", help="AWS edge (local cloud) URL.")
]
StackOption = Annotated[str, typer.Option("--stack-name", envvar="AWS_SAM_STACK_NAME", help="Stack to use.")]


@stack_app.command()
@reaching_the_stack
def deploy(
    path: Annotated[Path, typer.Argument(exists=True, dir_okay=False, help="The model.tar.gz to deploy.")],
    name: Annotated[str, typer.Option("--name", help="Model name (the <name> in models/<name>/).")],
    endpoint_url: EndpointOption = None,
    stack_name: StackOption = DEFAULT_STACK_NAME,
    timeout: Annotated[float, typer.Option(help="Seconds to follow the deployment.")] = 900,
) -> None:
    """Upload PATH as models/NAME/model.tar.gz and follow the deployment to InService or Failed."""
    key = f"models/{name}/model.tar.gz"
    try:
        naming.model_name_from_key(key)
    except UploadRejected as error:
        # OnUpload would refuse the key (recorded apart from any model): say so before uploading.
        raise fail(f"cannot deploy: {error.reason}") from error
    stack = StackClient(endpoint_url, stack_name)
    version = stack.upload(path, name)
    typer.echo(f"uploaded {path} as models/{name}/model.tar.gz (version {version})")
    with follow_display() as display:
        deployment = stack.follow(
            name, version, timeout_s=timeout, progress=display.transition, waiting=display.waiting
        )
    if deployment.status == "PendingApproval":
        # "approval": "manual": the live version keeps serving until this one is approved.
        typer.secho(
            f"{name} v{deployment.version} waits for approval (model package "
            f"{deployment.model_package_arn}): modeldrop approve {name} --version {deployment.version}",
            fg=typer.colors.YELLOW,
        )
        return
    if deployment.status != "InService":
        raise fail(f"deployment of {name} did not reach InService")
    typer.secho(f"{name} v{deployment.version} is InService", fg=typer.colors.GREEN)


@stack_app.command()
@reaching_the_stack
def approve(
    name: Annotated[str, typer.Argument(help="The model.")],
    version: Annotated[int, typer.Option("--version", min=1, help="The version waiting for approval.")],
    description: Annotated[
        str | None, typer.Option("--description", help="The package's ApprovalDescription.")
    ] = None,
    endpoint_url: EndpointOption = None,
    stack_name: StackOption = DEFAULT_STACK_NAME,
    timeout: Annotated[float, typer.Option(help="Seconds to follow the deployment.")] = 900,
) -> None:
    """Approve NAME's version in the SageMaker Model Registry (POST /models/NAME/versions/N/approve)
    and follow its deployment to InService."""
    stack = StackClient(endpoint_url, stack_name)
    try:
        accepted = stack.approve(name, version, description)
    except RestApiError as refusal:
        raise fail(f"approval of {name} v{version} refused: {refusal}") from refusal
    typer.echo(f"approved {name} v{version} (model package version {accepted.model_package_version})")
    with follow_display() as display:
        deployment = stack.follow(
            name,
            version=version,
            until=FINAL_STATUSES,
            timeout_s=timeout,
            progress=display.transition,
            waiting=display.waiting,
        )
    if deployment.status != "InService":
        raise fail(f"deployment of {name} v{version} did not reach InService")
    typer.secho(f"{name} v{version} is InService", fg=typer.colors.GREEN)


@stack_app.command()
@reaching_the_stack
def status(
    name: Annotated[str | None, typer.Argument(help="A model; all models when omitted.")] = None,
    endpoint_url: EndpointOption = None,
    stack_name: StackOption = DEFAULT_STACK_NAME,
) -> None:
    """Models with their endpoint status and live version (GET /models), or one model's deployments."""
    stack = StackClient(endpoint_url, stack_name)
    if name is None:
        for model in stack.list_models().models:
            live = f"live v{model.live_version}" if model.live_version is not None else "not live"
            typer.echo(f"{model.name}\t{model.status or '-'}\t{live}\t{model.endpoint_name or '-'}")
        return
    detail = stack.describe_model(name)
    if detail is None or not detail.history:
        raise fail(f"no deployments of {name}")
    for deployment in detail.history:
        reason = f"\t{deployment.reason}" if deployment.reason else ""
        typer.echo(f"v{deployment.version}\t{deployment.status}\t{deployment.created_at}{reason}")


@stack_app.command()
@reaching_the_stack
def invoke(
    name: Annotated[str, typer.Argument(help="The model to invoke.")],
    data: Annotated[str | None, typer.Option("--data", help="Request body (e.g. JSON).")] = None,
    file: Annotated[Path | None, typer.Option("--file", exists=True, dir_okay=False)] = None,
    content_type: Annotated[str, typer.Option("--content-type")] = "application/json",
    endpoint_url: EndpointOption = None,
    stack_name: StackOption = DEFAULT_STACK_NAME,
) -> None:
    """Call the model through the REST API (with the stack's API key) and print the answer."""
    if (data is None) == (file is None):
        raise fail("give exactly one of --data or --file")
    body = file.read_bytes() if file is not None else str(data).encode()
    response = StackClient(endpoint_url, stack_name).invoke(name, body, content_type)
    typer.echo(response.text)
    if response.status_code >= 400:
        raise typer.Exit(1)


@stack_app.command()
@reaching_the_stack
def rollback(
    name: Annotated[str, typer.Argument(help="The model to roll back.")],
    version: Annotated[
        int | None,
        typer.Option("--version", min=1, help="Kept version to restore (default: the previous live)."),
    ] = None,
    endpoint_url: EndpointOption = None,
    stack_name: StackOption = DEFAULT_STACK_NAME,
    timeout: Annotated[float, typer.Option(help="Seconds to follow the rollback.")] = 900,
) -> None:
    """Switch NAME's endpoint back to a kept version (POST /models/NAME/rollback) and follow it."""
    stack = StackClient(endpoint_url, stack_name)
    try:
        accepted = stack.rollback(name, version)
    except RestApiError as refusal:
        raise fail(f"rollback of {name} refused: {refusal}") from refusal
    typer.echo(f"rollback v{accepted.version} of {name} to v{accepted.rollback_to}: {accepted.status}")
    with follow_display() as display:
        deployment = stack.follow(
            name,
            version=accepted.version,
            timeout_s=timeout,
            progress=display.transition,
            waiting=display.waiting,
        )
    if deployment.status != "InService":
        raise fail(f"rollback of {name} did not reach InService")
    typer.secho(
        f"{name} serves v{accepted.rollback_to} again (rollback v{deployment.version})",
        fg=typer.colors.GREEN,
    )


@stack_app.command()
@reaching_the_stack
def logs(
    name: Annotated[str, typer.Argument(help="The model.")],
    endpoint_url: EndpointOption = None,
    stack_name: StackOption = DEFAULT_STACK_NAME,
    tail: Annotated[int, typer.Option("--tail", min=1, help="How many of the latest log events.")] = 200,
) -> None:
    """The model's deployment history with reasons, then its endpoint's latest log events."""
    stack = StackClient(endpoint_url, stack_name)
    detail = stack.describe_model(name)
    if detail is None:
        raise fail(f"no model named {name}")
    for deployment in reversed(detail.history):
        typer.echo(
            f"{deployment.updated_at} v{deployment.version} {deployment.status} {deployment.reason or ''}"
        )
    group = f"/aws/sagemaker/Endpoints/{naming.endpoint_name(name)}"
    client = stack.client("logs")
    latest: collections.deque[str] = collections.deque(maxlen=tail)
    try:
        for page in client.get_paginator("filter_log_events").paginate(logGroupName=group):
            latest.extend(event["message"].rstrip() for event in page.get("events", []))
    except client.exceptions.ResourceNotFoundException:
        typer.echo(f"(no log group {group})")
        return
    for message in latest:
        typer.echo(message)
