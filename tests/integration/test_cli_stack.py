"""A newcomer's first hour: `roadx up`, query the store every way it offers, `roadx down`.

Every command runs as a subprocess with no ``ROADX_*`` variable but those a test sets.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import clickhouse_connect
import pytest

pytestmark = pytest.mark.integration


def roadx(*args: str, env: dict[str, str] | None = None, timeout: float = 180) -> subprocess.CompletedProcess:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("ROADX_")}
    return subprocess.run([sys.executable, "-m", "deploy.cli", *args], capture_output=True, text=True,
                          timeout=timeout, env={**clean, **(env or {})})


def post(url: str, sql: str) -> str:
    request = urllib.request.Request(url, data=sql.encode(), method="POST")
    with urllib.request.urlopen(request, timeout=30) as answer:
        return answer.read().decode()


def holders(directory: Path) -> list[int]:
    """Processes with a file open under ``directory`` or started with it as their data directory."""
    root, found = str(directory.resolve()), []
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit() or int(proc.name) == os.getpid():
            continue
        try:
            fds = [os.readlink(fd) for fd in (proc / "fd").iterdir()]
            environ = (proc / "environ").read_bytes().split(b"\0")
        except OSError:
            continue
        if any(f.startswith(root) for f in fds) or f"ROADX_DATA_DIR={root}".encode() in environ:
            found.append(int(proc.name))
    return found


def wait_until_gone(directory: Path, timeout: float = 30) -> list[int]:
    deadline = time.monotonic() + timeout
    while (left := holders(directory)) and time.monotonic() < deadline:
        time.sleep(0.2)
    return left


@pytest.fixture(scope="module")
def stack(tmp_path_factory):
    """`roadx up` in a fresh data directory: (data dir, what it printed); `roadx down` after."""
    data_dir = tmp_path_factory.mktemp("stack") / "roadx"
    up = roadx("up", "--data-dir", str(data_dir))
    try:
        assert up.returncode == 0, up.stderr
        yield data_dir, up.stdout
    finally:
        down = roadx("down", "--data-dir", str(data_dir))
        assert down.returncode == 0, down.stderr
        assert wait_until_gone(data_dir) == []


def printed_url(stdout: str) -> str:
    found = re.search(r"^  sql +(http://127\.0\.0\.1:\d+/) ", stdout, re.MULTILINE)
    assert found, stdout
    return found.group(1)


def test_up_prints_where_to_query_and_the_store_answers_at_once(stack):
    data_dir, stdout = stack
    url = printed_url(stdout)
    port = int(url.rsplit(":", 1)[1].rstrip("/"))
    assert f"  curl --data-binary 'SELECT count() FROM change_log' {url}" in stdout
    assert f"  clickhouse_connect.get_client(host='127.0.0.1', port={port})" in stdout
    assert url == f"http://{json.loads((data_dir / 'stack.json').read_text())['store_http']}/"
    # No retry: `roadx up` returned only once this answers.
    assert post(url, "SELECT currentDatabase(), count() FROM change_log") == "roadx\t0\n"


def test_the_printed_url_answers_clickhouse_connect_in_the_exchange_database(stack):
    url = printed_url(stack[1])
    client = clickhouse_connect.get_client(host="127.0.0.1", port=int(url.rsplit(":", 1)[1].rstrip("/")))
    try:
        assert client.command("SELECT currentDatabase()") == "roadx"
        assert client.command("SELECT count() FROM change_log") == 0
    finally:
        client.close()


def test_every_part_printed_answers_when_up_returns(stack):
    data_dir, stdout = stack
    record = json.loads((data_dir / "stack.json").read_text())
    assert record["bootstrap_servers"] in stdout
    for address in record["metrics"].values():
        assert f"http://{address}/metrics" in stdout
        with urllib.request.urlopen(f"http://{address}/metrics", timeout=10) as answer:
            assert answer.status == 200
    service = f"http://{record['service']}/v1/"
    assert f"  service  {service} " in stdout
    # No retry: `roadx up` returned only once the service's register caught up.
    with urllib.request.urlopen(f"{service}health", timeout=10) as answer:
        assert json.loads(answer.read()) == {"ready": True}
    with urllib.request.urlopen(f"{service}openapi.json", timeout=10) as answer:
        assert "/v1/licences/{licence_no}/verification" in json.loads(answer.read())["paths"]


def test_roadx_query_defaults_to_the_exchange_database_like_the_endpoint(stack):
    data_dir, _ = stack
    result = roadx("query", "SELECT currentDatabase() AS db, count() AS n FROM change_log",
                   "--data-dir", str(data_dir), "--format", "tsv")
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == ["db\tn", "roadx\t0"]


def test_roadx_data_dir_finds_the_stack_like_the_flag(stack):
    data_dir, stdout = stack
    result = roadx("status", "--json", "--interval", "0.2", env={"ROADX_DATA_DIR": str(data_dir)})
    assert result.returncode == 0, result.stderr
    status = json.loads(result.stdout)
    assert status["store"] == {"url": printed_url(stdout), "database": "roadx", "up": True, "error": ""}


def test_status_shows_the_store_url(stack):
    data_dir, stdout = stack
    result = roadx("status", "--data-dir", str(data_dir), "--interval", "0.2")
    assert result.returncode == 0, result.stderr
    assert f"  up   {printed_url(stdout)}  database roadx" in result.stdout.splitlines()


def test_after_down_roadx_query_reads_the_embedded_store_in_the_exchange_database(tmp_path):
    data_dir = tmp_path / "roadx"
    up = roadx("up", "--data-dir", str(data_dir))
    assert up.returncode == 0, up.stderr
    down = roadx("down", "--data-dir", str(data_dir))
    assert down.returncode == 0, down.stderr
    assert wait_until_gone(data_dir) == []
    result = roadx("query", "SELECT currentDatabase() AS db, count() AS n FROM change_log", "--format", "tsv",
                   env={"ROADX_DATA_DIR": str(data_dir)})
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == ["db\tn", "roadx\t0"]


def test_up_that_is_not_ready_in_time_fails_with_everything_stopped(tmp_path):
    data_dir = tmp_path / "roadx"
    up = roadx("up", "--data-dir", str(data_dir), "--timeout", "0.05")
    assert up.returncode == 2
    assert up.stderr.startswith("roadx: error: the stack did not start: not ready within 0.05s: ")
    assert up.stderr.count("\n") == 1 and "Traceback" not in up.stderr
    assert not (data_dir / "stack.json").exists()
    assert wait_until_gone(data_dir) == []
