"""`python -m modeldrop_local.cli`: the `modeldrop` command."""

from modeldrop_local.cli import app

app()
