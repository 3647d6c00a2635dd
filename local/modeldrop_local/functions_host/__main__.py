"""The functions host's child processes:

python -m modeldrop_local.functions_host --fork-server CONTROL_FD   the workers' fork server (ForkServer)
python -m modeldrop_local.functions_host REPLY_FD SPEC_JSON         one function worker, spawned (Worker)
"""

from __future__ import annotations

import json
import os
import signal
import socket
import sys

from modeldrop_local.functions_host.fork_server import serve_forks
from modeldrop_local.functions_host.runtime import serve_invocations


def main(argv: list[str]) -> None:
    # Ctrl-C reaches the whole process group: the host, not each worker, decides when workers stop.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    if argv[0] == "--fork-server":
        serve_forks(socket.socket(fileno=int(argv[1])))
    else:
        with os.fdopen(int(argv[0]), "w") as replies:
            serve_invocations(sys.stdin, replies, json.loads(argv[1]))


if __name__ == "__main__":
    main(sys.argv[1:])
