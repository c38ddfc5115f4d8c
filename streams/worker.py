"""Run the stream worker: ``python -m streams.worker`` (settings from ``ROADX_*``)."""

from __future__ import annotations

import sys

import faust
from prometheus_client import start_http_server

from deploy.settings import Settings, resolve

from .app import create_app


def run_worker(settings: Settings, loglevel: str = "WARNING") -> None:
    """Serve metrics (when ``metrics_port`` > 0) and run the faust worker until SIGTERM/SIGINT."""
    if settings.metrics_port > 0:
        start_http_server(settings.metrics_port, addr="127.0.0.1")
    app = create_app(settings)
    worker = faust.Worker(app, loglevel=loglevel, quiet=True, redirect_stdouts=False)
    try:
        worker.execute_from_commandline()
    except SystemExit as exc:
        if exc.code not in (0, None):
            raise


def main() -> int:
    run_worker(resolve())
    return 0


if __name__ == "__main__":
    sys.exit(main())
