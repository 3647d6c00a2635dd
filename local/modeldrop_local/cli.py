"""`modeldrop`: run the local cloud, deploy and follow models, invoke them, package tarballs.

Every command except `local up`/`local invoke` and `package` talks to a deployed stack
(`stack_client.StackClient`): on AWS (profile/region as usual) or on the local cloud (`--endpoint-url`,
or AWS_ENDPOINT_URL). The stack is found from its Outputs (CloudFormation DescribeStacks), the upload
goes to its bucket, and everything else through its REST API with its API key.
"""

from __future__ import annotations

import collections
import functools
import json
import logging
import signal
import sys
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any, ParamSpec, TypeVar

import httpx
import typer
from botocore.exceptions import EndpointConnectionError, NoCredentialsError, NoRegionError
from modeldrop import naming

from modeldrop_local.credentials import is_loopback
from modeldrop_local.progress import follow_display
from modeldrop_local.stack import DEFAULT_STACK_NAME, TemplateError
from modeldrop_local.stack_client import ApiError, StackClient, StackNotFound

app = typer.Typer(
    help="modeldrop: drop a model.tar.gz, get a serverless endpoint and a REST API.", no_args_is_help=True
)
local_app = typer.Typer(
    help="The local cloud: the whole stack on this machine, no AWS, no Docker.", no_args_is_help=True
)
app.add_typer(local_app, name="local")

EndpointOption = Annotated[
    str | None, typer.Option("--endpoint-url", envvar="AWS_ENDPOINT_URL", help="AWS edge (local cloud) URL.")
]
StackOption = Annotated[str, typer.Option("--stack-name", envvar="AWS_SAM_STACK_NAME", help="Stack to use.")]
P = ParamSpec("P")
R = TypeVar("R")


def _fail(message: str) -> typer.Exit:
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
            raise _fail(f"cannot reach {target}{hint}") from error
        except StackNotFound as error:
            raise _fail(
                f"no stack named {error} at {_where(url)} "
                "(choose one with --stack-name or AWS_SAM_STACK_NAME)"
            ) from error
        except (NoCredentialsError, NoRegionError) as error:
            raise _fail(f"cannot call {_where(url)}: {error}") from error
        except ApiError as error:
            raise _fail(f"the REST API answered {error.status_code}: {error}") from error

    return run


def _failed_url(error: Exception) -> str:
    if isinstance(error, EndpointConnectionError):
        return str(error.kwargs.get("endpoint_url", ""))
    try:
        url = error.request.url  # type: ignore[attr-defined]  # httpx: the request that could not be sent
    except RuntimeError:
        return str(error)
    return f"{url.scheme}://{url.netloc.decode()}"


@app.command()
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
    except naming.InvalidModelKey as error:
        # OnUpload would refuse the key (recorded apart from any model): say so before uploading.
        raise _fail(f"cannot deploy: {error.reason}") from error
    stack = StackClient(endpoint_url, stack_name)
    version = stack.upload(path, name)
    typer.echo(f"uploaded {path} as models/{name}/model.tar.gz (version {version})")
    with follow_display() as display:
        deployment = stack.follow(
            name, version, timeout_s=timeout, progress=display.transition, waiting=display.waiting
        )
    if deployment.status != "InService":
        raise _fail(f"deployment of {name} did not reach InService")
    typer.secho(f"{name} v{deployment.version} is InService", fg=typer.colors.GREEN)


@app.command()
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
        raise _fail(f"no deployments of {name}")
    for deployment in detail.history:
        reason = f"\t{deployment.reason}" if deployment.reason else ""
        typer.echo(f"v{deployment.version}\t{deployment.status}\t{deployment.created_at}{reason}")


@app.command()
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
        raise _fail("give exactly one of --data or --file")
    body = file.read_bytes() if file is not None else str(data).encode()
    response = StackClient(endpoint_url, stack_name).invoke(name, body, content_type)
    typer.echo(response.text)
    if response.status_code >= 400:
        raise typer.Exit(1)


@app.command()
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
    except ApiError as refusal:
        raise _fail(f"rollback of {name} refused: {refusal}") from refusal
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
        raise _fail(f"rollback of {name} did not reach InService")
    typer.secho(
        f"{name} serves v{accepted.rollback_to} again (rollback v{deployment.version})",
        fg=typer.colors.GREEN,
    )


@app.command()
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
        raise _fail(f"no model named {name}")
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


@app.command()
def package(
    model_file: Annotated[list[Path], typer.Argument(exists=True, help="Model artifact file(s).")],
    output: Annotated[Path, typer.Option("-o", "--output", help="Where to write model.tar.gz.")],
    inference: Annotated[Path | None, typer.Option("--inference", help="code/inference.py handlers.")] = None,
    requirements: Annotated[
        Path | None, typer.Option("--requirements", help="code/requirements.txt.")
    ] = None,
    framework_version: Annotated[
        str | None,
        typer.Option(
            "--framework-version", help="Image version to check against (default: the default one)."
        ),
    ] = None,
) -> None:
    """Build a model.tar.gz with the layout SageMaker expects, and check it as an upload would be.

    The versions the model was saved with (code/modeldrop-libraries.json) are checked against the image
    it will run on, as OnUpload checks them: a model that image cannot load is not written.
    """
    for label, path in (("inference file", inference), ("requirements file", requirements)):
        if path is not None and not path.is_file():
            raise _fail(f"{label} not found: {path}")
    from modeldrop.frameworks import default_version
    from modeldrop.image_libraries import check_versions
    from modeldrop.model_config import ConfigRejected
    from modeldrop.packaging import PackagingError, build_model_tarball, describe_tarball
    from modeldrop.serving_setup import parse_libraries
    from modeldrop.tarball import TarballRejected

    try:
        path = build_model_tarball(model_file, output, inference_py=inference, requirements_txt=requirements)
        report = describe_tarball(path)
    except (PackagingError, TarballRejected, ConfigRejected) as error:
        raise _fail(f"cannot package: {getattr(error, 'reason', error)}") from error
    libraries, _ = parse_libraries(report.libraries_bytes)
    version = framework_version or (default_version(report.framework) if report.framework else None)
    versions = check_versions(libraries, report.framework, version)
    if versions.refusal:
        path.unlink()
        raise _fail(f"cannot package for the {version} image: {versions.refusal}")
    for warning in versions.warnings:
        typer.echo(f"warning: {warning}")
    typer.echo(f"wrote {path}: {', '.join(report.members)}")


@local_app.command("up")
def local_up(
    edge_port: Annotated[int, typer.Option("--edge-port")] = 4566,
    api_port: Annotated[int, typer.Option("--api-port")] = 3000,
    state_dir: Annotated[
        Path | None, typer.Option("--state-dir", help="Keep state here across restarts.")
    ] = None,
    template: Annotated[Path, typer.Option("--template")] = Path("template.yaml"),
    parameter: Annotated[
        list[str] | None, typer.Option("--parameter", "-p", help="Template parameter override, Key=Value.")
    ] = None,
    function_logs: Annotated[
        Path | None, typer.Option("--function-logs", help="Write each function's log to DIR/<name>.log.")
    ] = None,
    verbose: Annotated[
        bool, typer.Option("--verbose", "-v", help="Log every HTTP request; function logs as written.")
    ] = False,
) -> None:
    """Start the local cloud in the foreground until Ctrl-C or SIGTERM."""
    from modeldrop_local.cloud import LocalCloud

    configure_console(verbose)

    cloud = LocalCloud(
        template_path=template,
        edge_port=edge_port,
        api_port=api_port,
        state_dir=state_dir,
        parameters=_parameters(parameter),
        function_log_dir=function_logs,
        condensed_function_logs=not verbose,
    )
    if not template.is_file():
        raise _fail(f"template not found: {template} (run from the project root, or pass --template)")
    stop = threading.Event()
    previous = {
        number: signal.signal(number, lambda *_: stop.set()) for number in (signal.SIGINT, signal.SIGTERM)
    }
    try:
        _run_until_stopped(cloud, stop, state_dir)
    finally:
        for number, handler in previous.items():
            signal.signal(number, handler)


# Loggers that are only noise on a console at their default level, with the level they get unless
# --verbose: the edge and the REST front write an access-log line for every call between the cloud's
# own parts (their warnings and errors still show), and moto's ASL engine logs each Fail state with the
# whole state's repr at ERROR (the deployment's reason is in the logs of the function that recorded it).
_QUIET_LOGGERS = {
    "modeldrop_local.access": logging.WARNING,
    "moto.stepfunctions.parser.asl.component.eval_component": logging.CRITICAL,
}


def configure_console(verbose: bool) -> None:
    """Warnings and errors of every part on stderr; access logs and Fail-state dumps only when verbose."""
    if not logging.root.handlers:
        logging.basicConfig(format="%(asctime)s %(levelname)s %(name)s: %(message)s", datefmt="%H:%M:%S")
    for name, quiet_level in _QUIET_LOGGERS.items():
        logging.getLogger(name).setLevel(logging.INFO if verbose else quiet_level)


def _run_until_stopped(cloud: Any, stop: threading.Event, state_dir: Path | None) -> None:
    try:
        cloud.start()
    except TemplateError as error:
        raise _fail(f"cannot run {cloud.template_path}: {error}") from error
    except OSError as error:
        raise _fail(
            f"cannot start the local cloud (edge {cloud.edge_port}, REST {cloud.api_port}): {error}"
        ) from error
    try:
        assert cloud.stack is not None
        typer.echo(f"edge      {cloud.edge_url}   (export AWS_ENDPOINT_URL={cloud.edge_url})")
        typer.echo(f"REST API  {cloud.api_url}")
        restored = f" (restored from {state_dir})" if cloud.restored else ""
        typer.echo(f"stack     {cloud.stack.name}{restored}")
        for key, value in cloud.stack.outputs.items():
            typer.echo(f"  {key} = {value}")
        if cloud.stack.rest_api and cloud.stack.rest_api.api_key_value:
            typer.echo(f"  api key value = {cloud.stack.rest_api.api_key_value}")
        typer.echo("ready; Ctrl-C to stop")
        stop.wait()
    finally:
        typer.echo("stopping")
        cloud.stop()


def _parameters(pairs: list[str] | None) -> dict[str, str]:
    parameters = {}
    for pair in pairs or []:
        key, separator, value = pair.partition("=")
        if not separator:
            raise _fail(f"--parameter wants Key=Value, got {pair!r}")
        parameters[key] = value
    return parameters


@local_app.command("invoke")
@reaching_the_stack
def local_invoke(
    function: Annotated[str, typer.Argument(help="Logical id (OnUploadFunction) or function name.")],
    event: Annotated[
        Path, typer.Option("-e", "--event", exists=True, dir_okay=False, help="Event JSON file.")
    ],
    endpoint_url: Annotated[
        str | None,
        typer.Option(
            "--endpoint-url", help="A running local cloud's edge; a transient cloud is started if omitted."
        ),
    ] = None,
    template: Annotated[Path, typer.Option("--template")] = Path("template.yaml"),
) -> None:
    """Invoke one function with an event file: the Docker-free `sam local invoke`."""
    payload = event.read_bytes()
    json.loads(payload)
    if endpoint_url:
        response = StackClient(endpoint_url).client("lambda").invoke(FunctionName=function, Payload=payload)
        answer = response["Payload"].read()
        failed = "FunctionError" in response
    else:
        from modeldrop_local.cloud import LocalCloud, free_port

        # One invocation: no spare workers for the other functions.
        transient = LocalCloud(
            template_path=template, edge_port=free_port(), api_port=free_port(), spare_function_workers=0
        )
        with transient as cloud:
            assert cloud.functions is not None
            try:
                result = cloud.functions.invoke(function, payload)
            except KeyError as error:
                raise _fail(str(error.args[0])) from error
            answer, failed = result.payload, result.function_error
    sys.stdout.write(answer.decode() + "\n")
    if failed:
        raise typer.Exit(1)


if __name__ == "__main__":
    app()
