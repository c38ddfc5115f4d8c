"""A real chDB store served by ``StoreServer`` in this process, for the endpoint's own tests.

The store is written the way the sink writes one (``sinks.store.open_store``), then closed and
served on a free loopback port; on exit the server is closed and its threads are waited for.
"""

from __future__ import annotations

import datetime as dt
import http.client
import socket
import threading
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

from deploy.broker import free_port
from schemas.settings import Settings
from sinks.http_server import StoreServer
from sinks.store import open_store

PROBE_COLUMNS = ["n", "name", "day", "amount"]
PROBE_ROWS = [
    (1, "津A12345", dt.date(2024, 6, 1), 1.5),
    (2, "粤B67890", dt.date(2024, 6, 2), 2.25),
    (3, "plain", dt.date(2024, 6, 3), -3.0),
]


@contextmanager
def served_store(data_dir: Path) -> Iterator[StoreServer]:
    """A store holding ``roadx.probe`` (``PROBE_ROWS``), served read-only until the block ends."""
    settings = Settings(data_dir=data_dir)
    client = open_store(settings)
    try:
        client.command(f"CREATE DATABASE IF NOT EXISTS {settings.clickhouse_database}")
        client.command(f"CREATE TABLE {settings.clickhouse_database}.probe "
                       f"(n UInt32, name String, day Date, amount Float64) ENGINE = MergeTree ORDER BY n")
        client.insert("probe", PROBE_ROWS, column_names=PROBE_COLUMNS, database=settings.clickhouse_database)
    finally:
        client.close()
    server = StoreServer.start(settings.store_path, free_port())
    try:
        yield server
    finally:
        server.close()
        deadline = time.monotonic() + 30
        while (left := [t.name for t in threading.enumerate() if t.name.startswith("roadx-store")]):
            assert time.monotonic() < deadline, f"threads left running after close: {left}"
            time.sleep(0.05)


class SharedReader:
    """One buffered reader of a socket, handed to each ``http.client.HTTPResponse`` in turn.

    ``HTTPResponse`` reads ahead and closes its file when done; pipelined answers share one
    connection, so they must share one buffer that no single response closes.
    """

    def __init__(self, sock: socket.socket) -> None:
        self._fp = sock.makefile("rb")

    def makefile(self, *_args: object, **_kwargs: object) -> "SharedReader":
        return self

    def close(self) -> None:
        pass

    def __getattr__(self, name: str) -> object:
        return getattr(self._fp, name)


def read_response(reader: SharedReader, method: str = "GET") -> tuple[int, dict[str, str], bytes]:
    """The next answer on a connection: status, headers (lower-case names), body."""
    response = http.client.HTTPResponse(reader, method=method)  # type: ignore[arg-type]
    response.begin()
    body = response.read()
    return response.status, {k.lower(): v for k, v in response.getheaders()}, body
