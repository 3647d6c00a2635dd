"""`modeldrop local ...`: run the local cloud (`up`), or invoke one of its functions (`invoke`)."""

from __future__ import annotations

import json
import logging
import signal
import sys
import threading
from pathlib import Path
from typing import Annotated, Any

import typer

from modeldrop_local.cli.errors import fail, reaching_the_stack
from modeldrop_local.stack import TemplateError
from modeldrop_local.stack_client import StackClient

local_app = typer.Typer(
    help="The local cloud: the whole stack on this machine, no AWS, no Docker.", no_args_is_help=True
)


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
        raise fail(f"template not found: {template} (run from the project root, or pass --template)")
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
        raise fail(f"cannot run {cloud.template_path}: {error}") from error
    except OSError as error:
        raise fail(
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
            raise fail(f"--parameter wants Key=Value, got {pair!r}")
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
                raise fail(str(error.args[0])) from error
            answer, failed = result.payload, result.function_error
    sys.stdout.write(answer.decode() + "\n")
    if failed:
        raise typer.Exit(1)
