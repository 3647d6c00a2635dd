"""template.yaml as the unit tests see it, read by the one template reader (modeldrop_local.template)
for a stack named "modeldrop" in us-east-1: the name the sample events' bucket is derived from.

The tests create the template's tables, bucket and state machine in moto through that reader too, so
they run against the resources the template declares, not a hand-written twin.
"""

from __future__ import annotations

import functools
from typing import Any

from modeldrop_local.stack import (
    ACCOUNT_ID,
    DEFAULT_REGION,
    FunctionSpec,
    Resolver,
    function_specs,
    plan_stack,
)
from modeldrop_local.stack import load_template as _load_template

from tests.utils import REPO_ROOT

TEMPLATE_PATH = REPO_ROOT / "template.yaml"
REGION = DEFAULT_REGION
STACK_NAME = "modeldrop"
__all__ = ["ACCOUNT_ID", "REGION", "REPO_ROOT", "STACK_NAME", "TEMPLATE_PATH", "Resolver"]


def load_template() -> dict[str, Any]:
    return _load_template(TEMPLATE_PATH)


def plan(stack_name: str = STACK_NAME, **parameters: str) -> Resolver:
    """A fresh plan (its resolver may be changed by the caller)."""
    return plan_stack(TEMPLATE_PATH, stack_name=stack_name, parameters=parameters)


@functools.cache
def planned(**parameters: str) -> tuple[Resolver, dict[str, FunctionSpec]]:
    """The plan of stack "modeldrop" and its functions, read once per parameter set (tests share it
    read-only: reading the functions runs SAM's translator, a third of a second)."""
    resolver = plan(**parameters)
    return resolver, function_specs(resolver, TEMPLATE_PATH)
