"""Run a benchmark app under the bridge's own uvicorn settings (`unit21-bridge serve`).

usage: python bench/apps/serve.py {bare,naive,steps} PORT WORKERS
"""

from __future__ import annotations

import sys
from pathlib import Path

import uvicorn

from bridge.cli import UVICORN_OPTIONS


def main() -> None:
    name, port, workers = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
    uvicorn.run(
        f"{name}:app",
        app_dir=str(Path(__file__).resolve().parent),
        host="127.0.0.1",
        port=port,
        workers=workers,
        **UVICORN_OPTIONS,
    )


if __name__ == "__main__":
    main()
