"""Run the template's functions the way Lambda does: warm worker processes, one request at a time each.

FunctionsHost.invoke returns an InvokeResult (Lambda's Invoke: the payload, and whether it is a function
error). The parts, one module each:
- host.py          FunctionsHost: each function's idle workers, its concurrency, spares started ahead
- worker.py        one worker process, seen from the host: started, invoked, timed out, stopped
- fork_server.py   FunctionsForkServer: the fork server (modeldrop_local.forking) workers are forked from,
                   with the common libraries imported
- runtime.py       inside a worker: the handler imported once, the Lambda-shaped context and errors
- console.py       the functions' logs condensed for the `local up` console
- __main__.py      a spawned worker's command line
"""

from modeldrop_local.functions_host.fork_server import FunctionsForkServer
from modeldrop_local.functions_host.host import FunctionsHost, InvokeResult

__all__ = ["FunctionsForkServer", "FunctionsHost", "InvokeResult"]
