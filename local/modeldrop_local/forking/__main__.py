"""python -m modeldrop_local.forking --fork-server LABEL --control-fd FD --worker MODULE:FUNCTION ..."""

from modeldrop_local.forking.server import main

if __name__ == "__main__":
    main()
