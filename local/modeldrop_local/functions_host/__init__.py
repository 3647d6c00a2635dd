"""Run the template's functions the way Lambda does: warm worker processes, one request at a time each.

FunctionsHost.invoke returns an InvokeResult (Lambda's Invoke: the payload, and whether it is a function
error). The parts, one module each:
- host.py          FunctionsHost: each function's idle workers, its concurrency, spares started ahead
- worker.py        one worker process, seen from the host: started, invoked, timed out, stopped
- fork_server.py   ForkServer: the process with the common libraries imported that workers are forked from
- runtime.py       inside a worker: the handler imported once, the Lambda-shaped context and errors
- console.py       the functions' logs condensed for the `local up` console
- __main__.py      the fork server's and a spawned worker's command line
"""

from modeldrop_local.functions_host.fork_server import ForkServer
from modeldrop_local.functions_host.host import FunctionsHost, InvokeResult

__all__ = ["ForkServer", "FunctionsHost", "InvokeResult"]
