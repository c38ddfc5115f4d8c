"""When is the embedded stack ready: every part it announces answers.

A ``Part`` is a name, where it is, and a probe that raises ``StackError`` while the part
does not answer. ``wait_ready`` probes the parts until all answered, checking meanwhile
that no process died, and raises ``StackError`` naming the parts still silent when the
timeout passes. The probes: a TCP port accepts a connection (the broker), an address
serves Prometheus metrics (each worker), the store answers a real query in its default
database (the sink's HTTP endpoint, or a ClickHouse server).
"""

from __future__ import annotations

import socket
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from typing import Any, Callable, Iterable

from .errors import StackError
from .scrape import scrape

# The query a ready store answers: proves the endpoint serves, the schema exists and the
# default database is the exchange's (no ``roadx.`` prefix needed).
STORE_PROBE = "SELECT count() FROM change_log"


@dataclass(frozen=True)
class Part:
    name: str
    where: str
    probe: Callable[[], None]


def wait_ready(parts: Iterable[Part], timeout: float, check_alive: Callable[[], None] = lambda: None,
               clock: Callable[[], float] = time.monotonic, sleep: Callable[[float], None] = time.sleep,
               interval: float = 0.1) -> None:
    """Return once every part answered; raise ``StackError`` when ``timeout`` seconds pass first.

    ``check_alive`` raises (``StackError``) when a process has died: that ends the wait at once.
    """
    pending = list(parts)
    last: dict[str, str] = {}
    deadline = clock() + timeout
    while True:
        check_alive()
        for part in list(pending):
            try:
                part.probe()
            except StackError as exc:
                last[part.name] = str(exc)
            else:
                pending.remove(part)
        if not pending:
            return
        if clock() >= deadline:
            silent = "; ".join(f"{p.name} at {p.where}: {last.get(p.name, 'no answer')}" for p in pending)
            raise StackError(f"not ready within {timeout:g}s: {silent}")
        sleep(interval)


def port_probe(address: str) -> Callable[[], None]:
    """A probe of a TCP ``host:port`` accepting connections."""
    host, _, port = address.rpartition(":")

    def probe() -> None:
        try:
            socket.create_connection((host, int(port)), 1.0).close()
        except OSError as exc:
            raise StackError(f"no connection: {exc}") from exc
    return probe


def metrics_probe(address: str) -> Callable[[], None]:
    """A probe of a Prometheus endpoint at ``host:port`` serving its metrics."""
    return lambda: scrape(address, timeout=2)


def endpoint_probe(address: str, sql: str = STORE_PROBE) -> Callable[[], None]:
    """A probe of the served store at ``host:port``: a plain POST of ``sql`` answered with 200."""
    return lambda: query_endpoint(address, sql)


def health_probe(address: str) -> Callable[[], None]:
    """A probe of the information service at ``host:port``: ``/v1/health`` answered 200 (caught up)."""
    def probe() -> None:
        try:
            with urllib.request.urlopen(f"http://{address}/v1/health", timeout=2) as answer:
                answer.read()
        except (urllib.error.URLError, OSError) as exc:
            raise StackError(f"the service at {address} is not ready: {exc}") from exc
    return probe


def query_endpoint(address: str, sql: str, timeout: float = 5) -> str:
    """The body of the served store's answer to ``sql`` POSTed as is (no database named)."""
    request = urllib.request.Request(f"http://{address}/", data=sql.encode("utf-8"), method="POST")
    try:
        with urllib.request.urlopen(request, timeout=timeout) as answer:
            return answer.read().decode("utf-8")
    except urllib.error.HTTPError as exc:
        message = exc.read().decode("utf-8", errors="replace").strip().splitlines()
        raise StackError(f"{sql!r} failed: {message[0] if message else exc}") from exc
    except (urllib.error.URLError, OSError, UnicodeDecodeError) as exc:
        raise StackError(f"no answer: {exc}") from exc


def client_probe(open_client: Callable[[], Any], sql: str = STORE_PROBE) -> Callable[[], None]:
    """A probe of a store reached by a clickhouse-connect client that ``open_client`` opens."""
    def probe() -> None:
        try:
            client = open_client()
        except Exception as exc:  # the store's own error types (StoreError, ClickHouseError)
            raise StackError(_first_line(exc)) from exc
        try:
            client.query(sql)
        except Exception as exc:
            raise StackError(f"{sql!r} failed: {_first_line(exc)}") from exc
        finally:
            client.close()
    return probe


def _first_line(exc: BaseException) -> str:
    lines = str(exc).strip().splitlines()
    return lines[0] if lines else type(exc).__name__
