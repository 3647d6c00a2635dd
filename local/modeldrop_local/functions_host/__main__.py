"""A spawned function worker (when there is no fork server, see worker.py):

python -m modeldrop_local.functions_host REPLY_FD SPEC_JSON
"""

from __future__ import annotations

import json
import os
import signal
import sys

from modeldrop_local.functions_host.runtime import serve_invocations


def main(argv: list[str]) -> None:
    # Ctrl-C reaches the whole process group: the host, not each worker, decides when workers stop.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    with os.fdopen(int(argv[0]), "w") as replies:
        serve_invocations(sys.stdin, replies, json.loads(argv[1]))


if __name__ == "__main__":
    main(sys.argv[1:])
