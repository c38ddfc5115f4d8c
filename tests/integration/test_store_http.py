"""Query the embedded store while the sink runs: curl, clickhouse-connect and ``roadx``.

One sink worker process (``roadx worker sink``) serves its store on a free loopback
port for the whole module; licences are published to national.changes while it runs.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
import uuid

import clickhouse_connect
import pytest
from confluent_kafka import Producer

from deploy.broker import free_port, wait_for_port
from deploy.cli import main
from deploy.stack import StackInfo
from deploy.topics import create_topics, exchange_topics
from deploy.worker import worker_argv
from schemas import contract
from schemas.codec import EventCodec
from schemas.registry import EmbeddedRegistry
from schemas.settings import Settings, to_environ

pytestmark = pytest.mark.integration

FAR = dt.date(2099, 12, 31)
LICENCES = {  # licence_no -> (type, status code, valid_until, expected answer)
    "津交运管许可德字120128300595号": ("operating_permit", "valid", FAR, "valid"),
    "120101000063": ("transport_cert", "suspended", FAR, "suspended"),
    "440300000001": ("transport_cert", "revoked", FAR, "revoked"),
    "440300000002": ("transport_cert", "expired", FAR, "expired"),
    "440300000003": ("transport_cert", "valid", dt.date(2020, 1, 1), "expired"),
    "11010519491231002X": ("qualification", "valid", FAR, "valid"),
}


def licence_events():
    events = []
    for seq, (number, (ltype, status, until, _answer)) in enumerate(LICENCES.items(), start=1):
        holder = "practitioner:11010519491231002X" if ltype == "qualification" else "operator:91120000600037341L"
        record = {"licence_no": number, "licence_type": ltype, "holder_key": holder,
                  "issuer_region_code": "120128" if number.startswith(("津", "12")) else "440300",
                  "valid_from": dt.date(2019, 1, 1), "valid_until": until, "status": status}
        events.append({
            "event_id": str(uuid.uuid4()), "op": "c", "entity_type": "licence",
            "entity_key": contract.entity_key("licence", record), "before": None, "after": record,
            "source": {"province": "12", "system": "yz12", "table": "licences", "seq": seq, "snapshot": False},
            "ts_ms": dt.datetime(2024, 6, 1, tzinfo=dt.timezone.utc) + dt.timedelta(seconds=seq),
        })
    return events


def http(port, sql, **params):
    url = f"http://127.0.0.1:{port}/?" + urllib.parse.urlencode({"query": sql, **params})
    with urllib.request.urlopen(url, timeout=30) as response:
        return response.read().decode("utf-8"), response.headers


def stored_licences(port):
    """Licences the served store shows now (-1 while the sink has not created its tables yet)."""
    try:
        return int(http(port, "SELECT count() FROM roadx.current_licences")[0])
    except urllib.error.HTTPError:
        return -1


@pytest.fixture(scope="module")
def served(broker, tmp_path_factory):
    """A running sink worker serving its store; licences published and stored."""
    data_dir = tmp_path_factory.mktemp("served")
    settings = Settings(data_dir=data_dir, bootstrap_servers=broker.bootstrap_servers,
                        topic_prefix=f"t{uuid.uuid4().hex[:10]}.", provinces=("12", "44"), partitions=1,
                        national_partitions=2, sink_flush_seconds=0.3, store_http_port=free_port())
    create_topics(settings.bootstrap_servers, exchange_topics(settings))
    env = {k: v for k, v in os.environ.items() if not k.startswith("ROADX_")}
    with open(data_dir / "sink.log", "wb") as log:
        proc = subprocess.Popen([sys.executable, *worker_argv("sink")], env={**env, **to_environ(settings)},
                                stdout=log, stderr=subprocess.STDOUT)
    try:
        wait_for_port(settings.store_http_port, 60, proc)
        producer = Producer(settings.kafka_conf())
        codec = EventCodec(EmbeddedRegistry())
        for event in licence_events():
            producer.produce(settings.topics.national_changes, codec.encode(event), key=event["entity_key"].encode())
        assert producer.flush(30) == 0
        deadline = time.monotonic() + 90
        while stored_licences(settings.store_http_port) != len(LICENCES):
            assert proc.poll() is None, (data_dir / "sink.log").read_text()
            assert time.monotonic() < deadline, "the served store never showed the published licences"
            time.sleep(0.3)
        yield settings
    finally:
        proc.terminate()
        proc.wait(30)


@pytest.fixture
def stack_record(served):
    """A stack.json naming the served endpoint, so ``roadx`` commands go through it."""
    StackInfo(supervisor_pid=os.getpid(), bootstrap_servers=served.bootstrap_servers,
              data_dir=str(served.data_dir), store_http=f"127.0.0.1:{served.store_http_port}").write(served.stack_file)
    yield served
    served.stack_file.unlink(missing_ok=True)


def test_curl_queries_the_running_store(served):
    port = served.store_http_port
    out = subprocess.run(["curl", "-sS", f"http://127.0.0.1:{port}/?query=SELECT+count()+FROM+roadx.current_licences"],
                         capture_output=True, text=True, timeout=30, check=True).stdout
    assert out == f"{len(LICENCES)}\n"
    assert subprocess.run(["curl", "-sS", f"http://127.0.0.1:{port}/ping"], capture_output=True, text=True,
                          timeout=30, check=True).stdout == "Ok.\n"


def test_format_and_clickhouse_headers_follow_the_request(served):
    body, headers = http(served.store_http_port, "SELECT status, count() AS n FROM current_licences "
                         "GROUP BY status ORDER BY status", database="roadx", default_format="JSONEachRow")
    rows = [json.loads(line) for line in body.splitlines()]
    assert {r["status"]: int(r["n"]) for r in rows} == {"valid": 3, "suspended": 1, "revoked": 1, "expired": 1}
    assert headers["X-ClickHouse-Format"] == "JSONEachRow"
    assert int(json.loads(headers["X-ClickHouse-Summary"])["read_rows"]) >= 1


def test_clickhouse_connect_http_client_queries_the_running_store(served):
    client = clickhouse_connect.get_client(host="127.0.0.1", port=served.store_http_port, database="roadx")
    try:
        result = client.query("SELECT licence_no, licence_type, valid_until FROM current_licences "
                              "WHERE licence_no = {no:String}", parameters={"no": "120101000063"})
        assert result.result_rows == [("120101000063", "transport_cert", FAR)]
        assert client.query("SELECT * FROM change_log WHERE 0").column_names[:2] == ("event_id", "op")
        assert client.command("SELECT count() FROM change_log") == len(LICENCES)
    finally:
        client.close()


def test_sql_error_is_http_500_with_the_engine_code_and_message(served):
    with pytest.raises(urllib.error.HTTPError) as caught:
        http(served.store_http_port, "SELECT no_such_column FROM roadx.dlq")
    assert caught.value.code == 500
    assert caught.value.headers["X-ClickHouse-Exception-Code"] == "47"
    assert caught.value.read().decode().startswith("Code: 47. DB::Exception:")


@pytest.mark.parametrize("sql", ["DROP TABLE roadx.dlq", "INSERT INTO roadx.dlq (rule) VALUES ('x')",
                                 "SELECT 1; DROP TABLE roadx.dlq", "SELECT * FROM file('/etc/passwd', 'LineAsString')"])
def test_writes_and_file_access_are_refused(served, sql):
    with pytest.raises(urllib.error.HTTPError) as caught:
        http(served.store_http_port, sql)
    assert caught.value.code == 500
    assert http(served.store_http_port, "EXISTS TABLE roadx.dlq")[0] == "1\n"


def test_roadx_query_goes_through_the_endpoint_while_the_stack_runs(stack_record, capsys):
    assert main(["query", "--data-dir", str(stack_record.data_dir), "--format", "tsv",
                 "SELECT count() AS n FROM roadx.current_licences"]) == 0
    assert capsys.readouterr().out == f"n\n{len(LICENCES)}\n"


def test_roadx_query_sql_error_prints_the_engine_message_and_fails(stack_record, capsys):
    assert main(["query", "--data-dir", str(stack_record.data_dir), "SELECT no_such_column FROM roadx.dlq"]) == 2
    err = capsys.readouterr().err
    assert "Code: 47. DB::Exception: Unknown expression identifier `no_such_column`" in err
    assert "Traceback" not in err


@pytest.mark.parametrize("number", list(LICENCES))
def test_roadx_verify_through_the_endpoint_answers_each_status(stack_record, capsys, number):
    expected = LICENCES[number][3]
    code = main(["verify", "--data-dir", str(stack_record.data_dir), number, "--json"])
    answer = json.loads(capsys.readouterr().out)
    assert answer["status"] == expected
    assert code == (0 if expected == "valid" else 1)
    assert "11010519491231002X" not in (answer["holder"] or "")


def test_roadx_verify_injection_is_unknown(stack_record, capsys):
    assert main(["verify", "--data-dir", str(stack_record.data_dir), "x' OR '1'='1", "--json"]) == 1
    assert json.loads(capsys.readouterr().out)["status"] == "unknown"
