"""Malformed requests on the edge and the REST front: the client's fault, answered 400, never 500."""

from __future__ import annotations

import http.client
import socket
import time
from typing import Any

import boto3
import pytest
from botocore.config import Config
from modeldrop_local.cloud import LocalCloud

from reliability.hostile_http import expect_continue_call
from tests.utils import exchange_until_closed

# Each answer is waitress's (local/modeldrop_local/http_server.py), plus its one addition: both framings.
AMBIGUOUS_FRAMING = {
    "both Content-Length and Transfer-Encoding": (
        b"POST /x HTTP/1.1\r\nHost: h\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
        400,
        b"both Transfer-Encoding and Content-Length",
    ),
    "negative Content-Length": (
        b"POST /x HTTP/1.1\r\nHost: h\r\nContent-Length: -1\r\n\r\n",
        400,
        b"Content-Length is invalid",
    ),
    "two different Content-Length headers": (
        b"POST /x HTTP/1.1\r\nHost: h\r\nContent-Length: 2\r\nContent-Length: 30\r\n\r\n[]",
        400,
        b"Content-Length is invalid",
    ),
    "a transfer coding other than chunked": (
        b"POST /x HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: gzip\r\n\r\n",
        501,
        b"Transfer-Encoding requested is not supported.",
    ),
}


@pytest.mark.parametrize("case", sorted(AMBIGUOUS_FRAMING))
@pytest.mark.parametrize("port_of", ["edge", "rest"])
def test_ambiguous_framing_is_refused_with_its_reason_and_the_connection_closed(
    cloud: LocalCloud, case: str, port_of: str
) -> None:
    # Given a request whose body framing could be read two ways (how requests are smuggled)
    request, status, reason = AMBIGUOUS_FRAMING[case]
    assert cloud.rest is not None
    port = cloud.edge_port if port_of == "edge" else cloud.rest.port
    # When it reaches the port
    answer = exchange_until_closed(port, request)
    # Then it is refused with its status and reason, the app never runs, and the connection is closed
    head, _, body = answer.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 %d " % status)
    assert b"Connection: close" in head
    assert reason in body
    assert answer.count(b"HTTP/1.1 ") == 1


def test_a_path_no_service_knows_gets_a_400_in_s3s_shape_on_the_edge(cloud: LocalCloud) -> None:
    # Given an unsigned POST to a path that is no AWS API (moto takes unsigned requests as S3's)
    request = b"POST /nowhere HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 2\r\nConnection: close\r\n\r\n{}"
    # When it reaches the edge
    head, _, body = exchange_until_closed(cloud.edge_port, request).partition(b"\r\n\r\n")
    # Then the answer is S3's error document with 400, not a 500
    assert head.startswith(b"HTTP/1.1 400 ")
    assert b"Content-Type: application/xml" in head
    assert b"<Code>InvalidRequest</Code>" in body
    assert b"POST /nowhere" in body


def test_a_json_protocol_call_moto_cannot_parse_gets_a_400_in_json(cloud: LocalCloud) -> None:
    # Given a DynamoDB call whose body is not JSON
    body = b"not json"
    request = (
        b"POST / HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Amz-Target: DynamoDB_20120810.GetItem\r\n"
        b"Content-Type: application/x-amz-json-1.0\r\n"
        b"Authorization: AWS4-HMAC-SHA256 Credential=testing/20260101/us-east-1/dynamodb/aws4_request, "
        b"SignedHeaders=host, Signature=00\r\n"
        b"Content-Length: %d\r\nConnection: close\r\n\r\n%s" % (len(body), body)
    )
    # When it reaches the edge
    head, _, answer = exchange_until_closed(cloud.edge_port, request).partition(b"\r\n\r\n")
    # Then the client is told, in the JSON protocol's error shape, never with a 500
    status = int(head.split(b" ", 2)[1])
    assert 400 <= status < 500, head
    assert answer.startswith(b"{")


def test_s3_metadata_keeps_underscores_through_the_edge(cloud: LocalCloud, client: Any) -> None:
    # Given an object written with a metadata key that has an underscore (moto's own server keeps it)
    s3 = client("s3")
    bucket = cloud.stack.outputs["BucketName"] if cloud.stack else ""
    s3.put_object(Bucket=bucket, Key="meta/object", Body=b"x", Metadata={"model_name": "iris"})
    # When it is read back through the edge
    metadata = s3.head_object(Bucket=bucket, Key="meta/object")["Metadata"]
    # Then the key is spelt as written
    assert metadata == {"model_name": "iris"}


def test_edge_and_rest_front_keep_the_connection_open(cloud: LocalCloud) -> None:
    # Given one keep-alive HTTP/1.1 connection to each port
    assert cloud.rest is not None
    for port, path in ((cloud.edge_port, "/nowhere"), (cloud.rest.port, "/test/nowhere")):
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
        sockets = []
        # When two requests are sent on it
        for _ in range(2):
            connection.request("GET", path)
            response = connection.getresponse()
            response.read()
            sockets.append(connection.sock)
            # Then each is answered without closing the connection
            assert response.getheader("Connection") != "close"
        # and the second went over the socket of the first
        assert sockets[0] is not None
        assert sockets[0] is sockets[1]
        connection.close()


@pytest.mark.parametrize("body", [b"", b"{}"], ids=["empty-body", "small-body"])
@pytest.mark.parametrize("port_of", ["edge", "rest"])
def test_expect_continue_is_answered_on_every_port_whatever_the_body(
    cloud: LocalCloud, port_of: str, body: bytes
) -> None:
    # Given a request with Expect: 100-continue, sent as botocore sends it (head first, body on 100)
    assert cloud.rest is not None
    port, path = (cloud.edge_port, "/nowhere/key") if port_of == "edge" else (cloud.rest.port, "/test/x")
    head = b"PUT %s HTTP/1.1\r\nHost: 127.0.0.1\r\nExpect: 100-continue\r\nContent-Length: %d\r\n\r\n" % (
        path.encode(),
        len(body),
    )
    # When it reaches the port
    with socket.create_connection(("127.0.0.1", port), timeout=10) as connection:
        got = expect_continue_call(connection, head, body)
    # Then the 100 comes, and the app's own answer follows (no read timeout)
    assert got.continued
    assert got.status is not None and 400 <= got.status < 500
    assert got.seconds < 5.0


def test_an_empty_put_object_through_the_edge_is_stored_at_once(cloud: LocalCloud, aws_env: None) -> None:
    # Given the pinned boto3, which sends put_object(Body=b"") with Expect: 100-continue, Content-Length: 0
    # (a hang would show as a read timeout after 5 s, not botocore's default 60 s times its retries)
    s3 = boto3.client(
        "s3",
        endpoint_url=cloud.edge_url,
        region_name="us-east-1",
        config=Config(read_timeout=5, retries={"max_attempts": 1}),
    )
    bucket = cloud.stack.outputs["BucketName"] if cloud.stack else ""
    started = time.perf_counter()
    # When it puts an empty object through the edge
    s3.put_object(Bucket=bucket, Key="empty/object", Body=b"")
    seconds = time.perf_counter() - started
    # Then S3's answer comes without a read timeout, and the object is there, empty
    assert seconds < 5.0
    assert s3.get_object(Bucket=bucket, Key="empty/object")["Body"].read() == b""
