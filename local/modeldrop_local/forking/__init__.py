"""One fork server for both hosts: a process that imports libraries once and forks workers from them.

The functions host (Lambda's workers) and the local SageMaker (one server per image and framework)
both start workers this way: a cold start is a fork of a process with the libraries already imported,
so it pays for the function's or the model's own code, not for Python's imports.

- server.py     the server process: imports, then forks one worker per request and reports its exit
- client.py     ForkServer, the host's handle on a server process (start, fork, exits, close)
- processes.py  what both hosts do to a worker process: kill it with its group, describe its exit

Standard library only, and nothing is imported here: the server runs under the pinned interpreters of
the image environments too, which have none of the local cloud's dependencies.
"""
