"""CloudFormation on the edge: DescribeStacks of the local stack, with the template's Outputs.

The CLI, the end-to-end tests and `aws cloudformation describe-stacks` find the API URL, key id and
bucket through the stack's Outputs, as on AWS. moto's CloudFormation knows no stack here (the local
cloud creates the resources itself), so the edge answers this one call; the query protocol's other
actions, and other stacks, go on to moto.
"""

from __future__ import annotations

import uuid
from xml.sax.saxutils import escape

from werkzeug.wrappers import Response

from modeldrop_local.stack import LocalStack


def describe_stacks(stack: LocalStack, form: dict[str, list[str]]) -> Response | None:
    """DescribeStacks for this stack (or for no stack named) in the query protocol's XML, else None."""
    if form.get("Action") != ["DescribeStacks"] or form.get("StackName", [""])[0] not in (stack.name, ""):
        return None
    outputs = "".join(
        f"<member><OutputKey>{escape(key)}</OutputKey><OutputValue>{escape(value)}</OutputValue></member>"
        for key, value in stack.outputs.items()
    )
    parameters = "".join(
        f"<member><ParameterKey>{escape(key)}</ParameterKey><ParameterValue>{escape(str(stack.resolver.refs[key]))}"
        f"</ParameterValue></member>"
        for key in stack.resolver.template.get("Parameters", {})
    )
    stack_id = stack.resolver.refs["AWS::StackId"]
    body = (
        '<DescribeStacksResponse xmlns="http://cloudformation.amazonaws.com/doc/2010-05-15/">'
        "<DescribeStacksResult><Stacks><member>"
        f"<StackName>{escape(stack.name)}</StackName><StackId>{escape(stack_id)}</StackId>"
        "<CreationTime>2026-01-01T00:00:00Z</CreationTime><StackStatus>CREATE_COMPLETE</StackStatus>"
        f"<Parameters>{parameters}</Parameters><Outputs>{outputs}</Outputs>"
        "</member></Stacks></DescribeStacksResult>"
        f"<ResponseMetadata><RequestId>{uuid.uuid4()}</RequestId></ResponseMetadata>"
        "</DescribeStacksResponse>"
    )
    return Response(body, status=200, content_type="text/xml")
