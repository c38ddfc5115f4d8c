"""A throwaway PostgreSQL server for tests: initdb into a temporary directory, run on a free port.

The server listens on 127.0.0.1 only, keeps its unix socket in the temporary directory,
trusts local connections, and is stopped (and its directory removed) on exit. PostgreSQL
refuses to run as root, so under root it runs as the ``postgres`` system user.
"""

from __future__ import annotations

import contextlib
import glob
import os
import pwd
import shutil
import signal
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

from deploy.broker import die_with_parent, free_port

SUPERUSER = "roadx"


def server_binaries() -> Path | None:
    """The newest ``/usr/lib/postgresql/<version>/bin`` holding initdb and postgres, if any."""
    found = [Path(p).parent for p in glob.glob("/usr/lib/postgresql/*/bin/initdb")]
    found = [d for d in found if (d / "postgres").exists()]
    return max(found, key=lambda d: int(d.parent.name) if d.parent.name.isdigit() else 0) if found else None


@dataclass(frozen=True)
class PostgresServer:
    port: int
    socket_dir: Path

    @property
    def url(self) -> str:
        return f"postgresql://{SUPERUSER}@127.0.0.1:{self.port}/postgres"


def _run_as() -> dict:
    if os.geteuid() != 0:
        return {}
    try:
        account = pwd.getpwnam("postgres")
    except KeyError as exc:
        raise RuntimeError("running as root needs a 'postgres' system user to run the server") from exc
    return {"user": account.pw_uid, "group": account.pw_gid, "extra_groups": []}


@contextlib.contextmanager
def postgres_server(timeout: float = 60) -> Iterator[PostgresServer]:
    """Start a fresh server; yields where to reach it; stops it and removes its files on exit."""
    binaries = server_binaries()
    if binaries is None:
        raise RuntimeError("PostgreSQL is not installed (no /usr/lib/postgresql/*/bin/initdb); run .ci/install-postgres")
    run_as = _run_as()
    root = Path(tempfile.mkdtemp(prefix="roadx-pg-"))
    process: subprocess.Popen | None = None
    try:
        if run_as:
            os.chown(root, run_as["user"], run_as["group"])
        data = root / "data"
        subprocess.run(
            [str(binaries / "initdb"), "-D", str(data), "-U", SUPERUSER, "--auth=trust", "-E", "UTF8",
             "--locale=C.UTF-8", "--no-sync"],
            check=True, capture_output=True, cwd=root, **run_as)
        port = free_port()
        log = open(root / "postgres.log", "wb")
        try:
            process = subprocess.Popen(
                [str(binaries / "postgres"), "-D", str(data), "-p", str(port), "-k", str(root),
                 "-c", "listen_addresses=127.0.0.1", "-c", "fsync=off", "-c", "full_page_writes=off"],
                stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, cwd=root,
                preexec_fn=die_with_parent, **run_as)
        finally:
            log.close()
        server = PostgresServer(port, root)
        _wait_ready(server, process, root, timeout)
        yield server
    finally:
        if process is not None and process.poll() is None:
            process.send_signal(signal.SIGINT)  # fast shutdown
            try:
                process.wait(20)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        shutil.rmtree(root, ignore_errors=True)


def _wait_ready(server: PostgresServer, process: subprocess.Popen, root: Path, timeout: float) -> None:
    import psycopg

    deadline = time.monotonic() + timeout
    while True:
        if process.poll() is not None:
            log = (root / "postgres.log").read_text(errors="replace")[-2000:]
            raise RuntimeError(f"postgres exited with code {process.returncode}: {log}")
        try:
            psycopg.connect(server.url, connect_timeout=2).close()
            return
        except psycopg.OperationalError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.1)
