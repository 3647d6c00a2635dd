"""`modeldrop`: run the local cloud, deploy and follow models, invoke them, package tarballs.

Every command except `local up`/`local invoke` and `package` talks to a deployed stack
(`stack_client.StackClient`): on AWS (profile/region as usual) or on the local cloud (`--endpoint-url`,
or AWS_ENDPOINT_URL). The stack is found from its Outputs (CloudFormation DescribeStacks), the upload
goes to its bucket, and everything else through its REST API with its API key.

One Typer app per command group, merged here in the order `--help` lists them: the commands on a
deployed stack (stack_commands.py, then promote and abort: rollout_commands.py), `package`
(package.py), and `modeldrop local ...` (local.py).
"""

import typer

from modeldrop_local.cli.local import local_app
from modeldrop_local.cli.package import package_app
from modeldrop_local.cli.rollout_commands import rollout_app
from modeldrop_local.cli.stack_commands import stack_app

app = typer.Typer(
    help="modeldrop: drop a model.tar.gz, get a serverless endpoint and a REST API.", no_args_is_help=True
)
app.add_typer(stack_app)
app.add_typer(rollout_app)
app.add_typer(package_app)
app.add_typer(local_app, name="local")

__all__ = ["app"]
