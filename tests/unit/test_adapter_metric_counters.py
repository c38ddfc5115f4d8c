"""Adapter metrics: events read, sent and the spool depth move where events are built, spooled and acknowledged."""

from __future__ import annotations

import csv
import os
import random
import socket
from pathlib import Path

import pytest
from prometheus_client import REGISTRY

from deploy import cli
from deploy.broker import free_port
from deploy.worker import serve_metrics
from producers import metrics
from producers.synthetic import identities
from producers.errors import MetricsError, PublishError
from producers.files.adapter import FileAdapter, FileAdapterOptions
from producers.publisher import SpoolPublisher
from producers.spool import Spool
from schemas.settings import Settings

HEADER = ["统一社会信用代码", "业户名称", "行政区划代码", "状态"]


def sample(name: str, province: str, adapter: str) -> float:
    return REGISTRY.get_sample_value(name, {"province": province, "adapter": adapter}) or 0.0


def read(province: str, adapter: str) -> float:
    return sample("roadx_adapter_events_read_total", province, adapter)


def sent(province: str, adapter: str) -> float:
    return sample("roadx_adapter_events_sent_total", province, adapter)


def depth(province: str, adapter: str) -> float:
    return sample("roadx_adapter_spool_depth", province, adapter)


def test_counters_and_gauge_carry_province_and_adapter_labels():
    before_read, before_sent = read("45", "synthetic"), sent("45", "synthetic")
    metrics.events_read("45", "synthetic", 7)
    metrics.events_sent("45", "synthetic", 5)
    metrics.events_sent("45", "synthetic", 0)
    metrics.spool_depth("45", "synthetic", 2)
    assert read("45", "synthetic") - before_read == 7
    assert sent("45", "synthetic") - before_sent == 5
    assert depth("45", "synthetic") == 2
    assert read("45", "files") == 0  # other labels untouched


def test_an_unknown_adapter_label_is_refused():
    with pytest.raises(MetricsError, match="unknown adapter label 'csv'"):
        metrics.events_read("44", "csv", 1)


def test_metrics_are_off_when_the_port_is_zero(tmp_path):
    assert serve_metrics(Settings(data_dir=tmp_path)) is None


def test_a_port_already_taken_is_a_clear_error_from_the_cli(monkeypatch, capsys, tmp_path):
    for name in list(os.environ):
        if name.startswith("ROADX_"):
            monkeypatch.delenv(name)
    taken = socket.socket()
    taken.bind(("127.0.0.1", 0))
    taken.listen(1)
    try:
        port = taken.getsockname()[1]
        monkeypatch.setenv("ROADX_BOOTSTRAP_SERVERS", "127.0.0.1:1")
        monkeypatch.setenv("ROADX_DATA_DIR", str(tmp_path / "roadx"))
        monkeypatch.setenv("ROADX_METRICS_PORT", str(port))
        (tmp_path / "a.csv").write_text("uscc\n", "utf-8")
        assert cli.main(["produce", "files", "--province", "44", "--entity", "operator", str(tmp_path / "a.csv")]) == 2
    finally:
        taken.close()
    assert f"cannot serve metrics on 127.0.0.1:{port}" in capsys.readouterr().err


def write_operators(path: Path, n: int) -> Path:
    rng = random.Random(5)
    with open(path, "w", encoding="utf-8", newline="") as out:
        writer = csv.writer(out)
        writer.writerow(HEADER)
        writer.writerows([identities.make_uscc(rng, "450100"), f"南宁运输{i}有限公司", "450100", "正常"] for i in range(n))
    return path


def test_events_built_while_the_broker_is_unreachable_count_as_read_and_stay_in_the_spool_gauge(tmp_path):
    settings = Settings(data_dir=tmp_path / "roadx", bootstrap_servers=f"127.0.0.1:{free_port()}", provinces=("45",))
    path = write_operators(tmp_path / "operators.csv", 12)
    before_read, before_sent = read("45", "files"), sent("45", "files")
    with FileAdapter(settings, "45", "operator", FileAdapterOptions(chunk=5, delivery_timeout_s=1)) as adapter:
        with pytest.raises(PublishError):
            adapter.process(path)
    assert read("45", "files") - before_read == 12
    assert sent("45", "files") == before_sent
    assert depth("45", "files") == 12


class Delivered:
    """What a delivery report names: the message's topic."""

    def __init__(self, topic: str) -> None:
        self._topic = topic

    def topic(self) -> str:
        return self._topic


class AcknowledgingProducer:
    """Delivers every produced message successfully on the next poll or flush."""

    def __init__(self) -> None:
        self.waiting: list = []

    def produce(self, topic, value, key, on_delivery):
        self.waiting.append((on_delivery, Delivered(topic)))

    def poll(self, _timeout):
        done, self.waiting = self.waiting, []
        for callback, message in done:
            callback(None, message)
        return len(done)

    def flush(self, _timeout):
        self.poll(0)
        return 0

    def __len__(self):
        return len(self.waiting)


def test_publisher_reports_each_acknowledgement_once(tmp_path):
    acked: list[int] = []
    with Spool(tmp_path / "spool.db") as spool:
        spool.append([("prov.45.changes", b"k", f"v{i}".encode()) for i in range(7)])
        publisher = SpoolPublisher(spool, producer=AcknowledgingProducer(), chunk=3, on_acked=acked.append)
        assert publisher.drain() == 7
        assert publisher.commit_delivered() == 0
        assert sum(acked) == 7 and all(n > 0 for n in acked)
        assert spool.depth() == 0
