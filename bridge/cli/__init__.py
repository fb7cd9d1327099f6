"""The `unit21-bridge` command line: `main.main` is the console script, each command a module.

`main` itself is not re-exported here: the name would hide the module `bridge.cli.main`."""

from bridge.cli.exits import ExitCode
from bridge.cli.main import build_parser
from bridge.cli.serve import UVICORN_OPTIONS

__all__ = ["UVICORN_OPTIONS", "ExitCode", "build_parser"]
