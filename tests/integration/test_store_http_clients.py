"""Real ClickHouse clients against the store endpoint: clickhouse-connect, curl, @clickhouse/client.

A real chDB store served by ``StoreServer`` in this process on a free loopback port. The
JavaScript client is installed from ``tests/integration/js/package-lock.json`` with ``npm ci``
into a temporary directory (network access to the npm registry needed).
"""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import clickhouse_connect
import pandas as pd
import pyarrow as pa
import pytest
from clickhouse_connect.driver.exceptions import DatabaseError
from served_store import PROBE_COLUMNS, PROBE_ROWS, served_store

pytestmark = pytest.mark.integration

JS_DIR = Path(__file__).parent / "js"
NAMES = [name for _n, name, _d, _a in PROBE_ROWS]


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    with served_store(tmp_path_factory.mktemp("served")) as running:
        yield running


@pytest.fixture
def client(server):
    """clickhouse-connect as analysts open it.

    It reads ``system.settings`` first and sees every setting read-only (the engine runs with
    ``readonly = 1``), so it asks for no ``enable_http_compression``: its answers come plain.
    """
    opened = clickhouse_connect.get_client(host="127.0.0.1", port=server.port, database="roadx")
    yield opened
    opened.close()


def test_clickhouse_connect_query_with_bound_parameters(client):
    result = client.query("SELECT n, name, day FROM probe WHERE n >= {low:UInt32} ORDER BY n", parameters={"low": 2})
    assert result.result_rows == [(n, name, day) for n, name, day, _a in PROBE_ROWS[1:]]
    assert client.command("SELECT count() FROM probe") == len(PROBE_ROWS)


def test_clickhouse_connect_query_df_is_a_dataframe_of_the_rows(client):
    frame = client.query_df("SELECT n, name, day, amount FROM probe ORDER BY n")
    expected = pd.DataFrame(PROBE_ROWS, columns=PROBE_COLUMNS)
    assert list(frame.columns) == PROBE_COLUMNS
    assert frame["n"].tolist() == expected["n"].tolist()
    assert frame["name"].tolist() == NAMES
    assert [pd.Timestamp(v).date() for v in frame["day"]] == [d for _n, _name, d, _a in PROBE_ROWS]
    assert frame["amount"].tolist() == expected["amount"].tolist()


def test_clickhouse_connect_query_arrow_is_an_arrow_table_of_the_rows(client):
    table = client.query_arrow("SELECT n, name, day, amount FROM probe ORDER BY n")
    assert isinstance(table, pa.Table)
    assert table.column_names == PROBE_COLUMNS
    assert table.to_pylist() == [dict(zip(PROBE_COLUMNS, row)) for row in PROBE_ROWS]


def test_clickhouse_connect_empty_result_still_names_its_columns(client):
    assert client.query("SELECT * FROM probe WHERE 0").column_names == tuple(PROBE_COLUMNS)


def test_clickhouse_connect_long_parameters_go_in_a_multipart_form(client):
    names = [f"unknown-{i:05d}" for i in range(600)] + ["plain"]  # well past the client's 4 KiB URL budget
    result = client.query("SELECT n FROM probe WHERE has({names:Array(String)}, name)", parameters={"names": names})
    assert result.result_rows == [(3,)]


def test_clickhouse_connect_sql_error_carries_the_engine_code(client):
    with pytest.raises(DatabaseError, match="Code: 47"):
        client.query("SELECT no_such_column FROM probe")
    with pytest.raises(DatabaseError, match="Code: 164"):
        client.command("DROP TABLE probe")
    assert client.command("EXISTS TABLE probe") == 1


needs_curl = pytest.mark.skipif(shutil.which("curl") is None, reason="the curl binary is not installed")


def curl(*args: str) -> str:
    return subprocess.run(["curl", "-sS", *args], capture_output=True, text=True, timeout=60, check=True).stdout


@needs_curl
def test_curl_query_in_the_body(server):
    url = f"http://127.0.0.1:{server.port}/"
    assert curl("--data-binary", "SELECT 1", url) == "1\n"
    assert curl("--data-binary", "SELECT name FROM probe ORDER BY n", f"{url}?database=roadx") == \
        "".join(f"{name}\n" for name in NAMES)


@needs_curl
def test_curl_chunked_upload_and_compressed_answer(server):
    url = f"http://127.0.0.1:{server.port}/?database=roadx&enable_http_compression=1&default_format=JSONEachRow"
    out = subprocess.run(["curl", "-sS", "--compressed", "-H", "Transfer-Encoding: chunked", "--data-binary", "@-",
                          url], input="SELECT n, name FROM probe ORDER BY n", capture_output=True, text=True,
                         timeout=60, check=True).stdout
    assert [json.loads(line) for line in out.splitlines()] == [{"n": n, "name": name} for n, name, _d, _a in PROBE_ROWS]


@needs_curl
def test_curl_sees_an_error_status_and_the_engine_message(server):
    out = curl("-o", "-", "-w", "\n%{http_code}", "--data-binary", "SELECT no_such_column FROM roadx.probe",
               f"http://127.0.0.1:{server.port}/")
    message, status = out.rsplit("\n", 1)
    assert status == "500"
    assert message.startswith("Code: 47. DB::Exception:")


@pytest.fixture(scope="module")
def js_client(tmp_path_factory):
    """A directory with @clickhouse/client installed from the committed lock file, and the query script."""
    node, npm = shutil.which("node"), shutil.which("npm")
    if node is None or npm is None:
        pytest.skip("node and npm are needed to run the @clickhouse/client check")
    where = tmp_path_factory.mktemp("js")
    for name in ("package.json", "package-lock.json", "query.mjs"):
        shutil.copy(JS_DIR / name, where / name)
    installed = subprocess.run([npm, "ci", "--no-audit", "--no-fund", "--ignore-scripts"], cwd=where,
                               capture_output=True, text=True, timeout=600)
    assert installed.returncode == 0, f"npm ci failed:\n{installed.stdout}\n{installed.stderr}"
    return node, where


def test_clickhouse_js_client_queries_the_store(server, js_client):
    node, where = js_client
    version = json.loads((where / "node_modules/@clickhouse/client/package.json").read_text())["version"]
    assert version == json.loads((JS_DIR / "package.json").read_text())["dependencies"]["@clickhouse/client"]
    run = subprocess.run([node, "query.mjs", f"http://127.0.0.1:{server.port}"], cwd=where, capture_output=True,
                         text=True, timeout=120)
    assert run.returncode == 0, run.stderr
    out = json.loads(run.stdout)
    probe = [{"n": n, "name": name} for n, name, _d, _a in PROBE_ROWS]
    assert out["ping"] is True
    assert out["first"]["rows"] == probe[:2]
    assert [int(row["c"]) for row in out["second"]["rows"]] == [len(PROBE_ROWS)]
    assert out["unknown_column"]["code"] == "47"
    assert (out["drop"]["code"], out["drop"]["type"]) == ("164", "READONLY")
    assert out["after_errors"]["rows"] == [{"top": 3}]
    assert out["gzip"]["rows"] == probe and out["gzip"]["encoding"] == "gzip"
    assert out["multipart"]["rows"] == probe[:1]
    assert len({out[k]["query_id"] for k in ("first", "second", "after_errors", "gzip", "multipart")}) == 5

