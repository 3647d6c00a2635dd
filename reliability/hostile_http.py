"""Raw-socket requests that a well-behaved client never sends, against one HTTP port."""

from __future__ import annotations

import contextlib
import select
import socket
import threading
import time
from dataclasses import dataclass, field

from reliability.results import CaseResult

MAX_PAYLOAD_BYTES = 4 * 1024 * 1024  # SageMaker Serverless's (and API Gateway's 10 MB is larger)
SLOW_CLIENTS = 50


@dataclass(frozen=True)
class Port:
    """One listening port and a path on it that takes a request body (for the 413 case)."""

    name: str
    port: int
    invocation_path: str
    headers: dict[str, str] = field(default_factory=dict)
    # SageMaker's own answer to a serverless payload over 4 MB is a 400 ValidationError "Request <id> has
    # oversize body." (aws/sagemaker-python-sdk#4271); API Gateway's REST front answers 413.
    oversize_status: int = 413
    oversize_text: str = ""


def exchange(port: int, request: bytes, read_timeout_s: float = 5.0) -> bytes:
    """Send raw bytes and read until the server closes or stays silent for read_timeout_s."""
    with socket.create_connection(("127.0.0.1", port), timeout=10) as connection:
        # The server may answer early (e.g. 413) and close: its answer is still readable.
        with contextlib.suppress(BrokenPipeError, ConnectionResetError):
            connection.sendall(request)
        connection.settimeout(read_timeout_s)
        answer = b""
        try:
            while chunk := connection.recv(65536):
                answer += chunk
        except (TimeoutError, ConnectionResetError):
            pass
    return answer


def status_of(answer: bytes) -> int | None:
    line = answer.split(b"\r\n", 1)[0].split(b" ")
    return int(line[1]) if len(line) > 1 and line[0].startswith(b"HTTP/") and line[1].isdigit() else None


def _body(answer: bytes) -> str:
    return answer.partition(b"\r\n\r\n")[2][:160].decode("utf-8", "replace")


def _responses(answer: bytes) -> int:
    """How many HTTP responses the bytes hold (a smuggled request shows up as a second one)."""
    return answer.count(b"HTTP/1.1 ") + answer.count(b"HTTP/1.0 ")


def _row(target: Port, case: str, expected: str, answer: bytes, held: bool, **figures: object) -> CaseResult:
    status = status_of(answer)
    observed = f"{status} {_body(answer)!r}" if status else f"no HTTP answer ({len(answer)} bytes)"
    return CaseResult(
        group="Hostile HTTP",
        case=f"{target.name}: {case}",
        expected=expected,
        observed=observed,
        held=held,
        figures=dict(figures),
    )


def _head(target: Port, method: str, path: str, extra: str = "") -> bytes:
    return f"{method} {path} HTTP/1.1\r\nHost: 127.0.0.1:{target.port}\r\n{extra}".encode()


def framing_cases(target: Port) -> list[CaseResult]:
    rows = []
    path = target.invocation_path
    cases = {
        "Content-Length and Transfer-Encoding both": _head(
            target, "POST", path, "Content-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n"
        )
        + b"0\r\n\r\n",
        "negative Content-Length": _head(target, "POST", path, "Content-Length: -1\r\n\r\n"),
        "two different Content-Length headers": _head(
            target, "POST", path, "Content-Length: 2\r\nContent-Length: 30\r\n\r\n"
        )
        + b"[]",
    }
    for case, request in cases.items():
        answer = exchange(target.port, request)
        rows.append(_row(target, case, "400, connection closed", answer, status_of(answer) == 400))
    huge = _head(target, "GET", "/", "X-Filler: " + "a" * 100_000 + "\r\nConnection: close\r\n\r\n")
    answer = exchange(target.port, huge)
    rows.append(_row(target, "100 KB header", "431", answer, status_of(answer) == 431))
    answer = exchange(target.port, _head(target, "GET", "/nowhere/at/all", "Connection: close\r\n\r\n"))
    status = status_of(answer)
    rows.append(
        _row(
            target,
            "unknown path",
            "4xx in the service's shape, never 5xx",
            answer,
            status is not None and 400 <= status < 500,
        )
    )
    # CL.TE smuggling: a front that reads Content-Length would pass the GET on as a second request.
    smuggled = b"0\r\n\r\nGET /smuggled HTTP/1.1\r\nHost: h\r\n\r\n"
    request = (
        _head(
            target,
            "POST",
            path,
            f"Content-Length: {len(smuggled)}\r\nTransfer-Encoding: chunked\r\n\r\n",
        )
        + smuggled
    )
    answer = exchange(target.port, request)
    rows.append(
        _row(
            target,
            "smuggling (CL.TE, a GET hidden in the body)",
            "exactly one answer (400), the hidden GET never answered",
            answer,
            _responses(answer) == 1 and status_of(answer) == 400,
            responses=_responses(answer),
        )
    )
    # TE obfuscated with a space before the colon: RFC 9112 5.1 says reject with 400.
    request = (
        _head(target, "POST", path, "Transfer-Encoding : chunked\r\nContent-Length: 4\r\n\r\n") + b"[]\r\n"
    )
    answer = exchange(target.port, request)
    status = status_of(answer)
    rows.append(
        _row(
            target,
            "smuggling (obfuscated 'Transfer-Encoding : chunked')",
            "one answer, 4xx, never 5xx",
            answer,
            _responses(answer) == 1 and status is not None and 400 <= status < 500,
            responses=_responses(answer),
        )
    )
    return rows


def oversize_case(target: Port) -> CaseResult:
    body = b"[" + b"0," * ((MAX_PAYLOAD_BYTES - 1) // 2) + b"0]"
    body = body[: MAX_PAYLOAD_BYTES + 1]
    headers = "".join(f"{k}: {v}\r\n" for k, v in target.headers.items())
    request = (
        _head(
            target,
            "POST",
            target.invocation_path,
            f"{headers}Content-Type: application/json\r\nContent-Length: {len(body)}\r\n"
            "Connection: close\r\n\r\n",
        )
        + body
    )
    answer = exchange(target.port, request, read_timeout_s=30)
    expected = f"{target.oversize_status} {target.oversize_text}".strip()
    held = status_of(answer) == target.oversize_status and target.oversize_text in _body(answer)
    return _row(target, "body of 4 MB + 1 byte", expected, answer, held, body_bytes=len(body))


def slowloris_case(target: Port, clients: int = SLOW_CLIENTS, hold_s: float = 5.0) -> CaseResult:
    """clients connections trickle a header byte a second; a normal request must still be answered."""
    stop = threading.Event()
    sockets: list[socket.socket] = []
    for _ in range(clients):
        connection = socket.create_connection(("127.0.0.1", target.port), timeout=10)
        connection.sendall(_head(target, "GET", "/slow"))
        sockets.append(connection)

    def trickle() -> None:
        while not stop.wait(1.0):
            for connection in sockets:
                with contextlib.suppress(OSError):
                    connection.sendall(b"X")

    thread = threading.Thread(target=trickle, daemon=True)
    thread.start()
    try:
        time.sleep(hold_s / 2)  # the slow clients are connected and trickling before the normal one
        started = time.perf_counter()
        answer = exchange(target.port, _head(target, "GET", "/nowhere", "Connection: close\r\n\r\n"), 20)
        seconds = time.perf_counter() - started
    finally:
        stop.set()
        thread.join()
        for connection in sockets:
            connection.close()
    status = status_of(answer)
    return _row(
        target,
        f"slowloris ({clients} clients trickling headers)",
        "a normal request is answered within 2 s",
        answer,
        status is not None and seconds < 2.0,
        normal_request_s=round(seconds, 3),
    )


def expect_continue_cases(target: Port) -> list[CaseResult]:
    """`Expect: 100-continue` as botocore sends it (1.43.11 and the pinned release send the same bytes:
    the head alone, the body only after a 100), for an empty body, a small one, and both on one
    kept-alive connection (1.43.11 garbles the second answer if the first came without a 100)."""
    headers = "".join(
        f"{k}: {v}\r\n" for k, v in {"Content-Type": "application/json", **target.headers}.items()
    )

    def head(length: int) -> bytes:
        expect = f"Expect: 100-continue\r\nContent-Length: {length}\r\n\r\n"
        return _head(target, "POST", target.invocation_path, headers + expect)

    def judged(case: str, answers: list[ExpectAnswer]) -> CaseResult:
        held = all(a.continued and a.status is not None and a.seconds < 2.0 for a in answers)
        observed = "; ".join(
            (f"100 then {a.status} in {a.seconds:.3f} s" if a.continued else f"no 100, {a.status}")
            if a.status is not None
            else f"no final answer within {a.seconds:.0f} s (hung)"
            for a in answers
        )
        return CaseResult(
            group="Hostile HTTP",
            case=f"{target.name}: {case}",
            expected="100 Continue, then the service's own answer within 2 s (no read timeout)",
            observed=observed,
            held=held,
            figures={"seconds": [round(a.seconds, 3) for a in answers]},
        )

    rows = []
    for case, body in (
        ("Expect: 100-continue, Content-Length: 0", b""),
        ("Expect: 100-continue, 2-byte body", b"[]"),
    ):
        with socket.create_connection(("127.0.0.1", target.port), timeout=10) as connection:
            rows.append(judged(case, [expect_continue_call(connection, head(len(body)), body)]))
    with socket.create_connection(("127.0.0.1", target.port), timeout=10) as connection:
        first = expect_continue_call(connection, head(0), b"")
        second = expect_continue_call(connection, head(2), b"[]")
    rows.append(judged("Expect: 100-continue, empty then 2-byte body on one connection", [first, second]))
    return rows


def all_cases(target: Port) -> list[CaseResult]:
    return [
        *framing_cases(target),
        *expect_continue_cases(target),
        oversize_case(target),
        slowloris_case(target),
    ]


@dataclass(frozen=True)
class ExpectAnswer:
    """What a client that sent `Expect: 100-continue` got: the interim 100 or not, then the final answer."""

    continued: bool  # a 100 Continue came before the final answer
    body_sent: bool
    status: int | None  # None: no final answer before the read timeout (the hang)
    body: bytes
    seconds: float


def expect_continue_call(
    connection: socket.socket, head: bytes, body: bytes, read_timeout_s: float = 5.0
) -> ExpectAnswer:
    """One request with `Expect: 100-continue`, sent as botocore sends it, on a kept-alive connection.

    botocore (awsrequest.py AWSConnection._send_output, the same in 1.43.11 and later) sends the head
    alone, waits up to 1 s for an answer: a 100 Continue, and it sends the body; a final answer, and it
    sends nothing more; silence, and it sends the body anyway. It then reads the final answer.
    """
    started = time.perf_counter()
    connection.sendall(head)
    reader = connection.makefile("rb")
    continued = body_sent = False
    connection.settimeout(read_timeout_s)
    answered_within_1s = bool(select.select([connection], [], [], 1.0)[0])  # urllib3's wait_for_read
    try:
        status_line = reader.readline() if answered_within_1s else b""
        if status_line.startswith(b"HTTP/1.1 100 "):
            continued = True
            while reader.readline() not in (b"\r\n", b""):
                pass
            status_line = b""
        if not status_line:
            connection.sendall(body)
            body_sent = True
            status_line = reader.readline()
        length = 0
        while (line := reader.readline()) not in (b"\r\n", b""):
            name, _, value = line.partition(b":")
            if name.strip().lower() == b"content-length":
                length = int(value)
        answer = reader.read(length) if length else b""
    except TimeoutError:
        return ExpectAnswer(continued, body_sent, None, b"", time.perf_counter() - started)
    finally:
        reader.close()
    return ExpectAnswer(continued, body_sent, status_of(status_line), answer, time.perf_counter() - started)
