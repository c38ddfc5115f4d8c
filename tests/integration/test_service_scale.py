"""Two service workers under query load, one killed: the other keeps answering, no answer is
wrong (each checked against the store), and the killed one, started again, catches up from
its own copy and answers again."""

from __future__ import annotations

import dataclasses
import signal
import threading
import urllib.error
import urllib.parse

import pytest

from deploy.broker import free_port
from deploy.topics import create_topics, exchange_topics
from producers.synthetic.generator import SyntheticProvinces
from schemas.credentials import Credentials, credentials_file
from schemas.settings import Settings
from sinks.store import open_store
from test_service import NOW, Caller, publish, running_service, wait_until
from test_service_store import fill_store

pytestmark = pytest.mark.integration

PROVINCES = ("44", "11")


@pytest.fixture
def national(bootstrap, tmp_path, unique):
    settings = Settings(data_dir=tmp_path, bootstrap_servers=bootstrap, topic_prefix=f"tk{unique}.",
                        provinces=PROVINCES, service_rate_per_second=10_000)
    create_topics(bootstrap, exchange_topics(settings))
    events = [g.event for g in SyntheticProvinces(PROVINCES, seed=9, duplicate_rate=0, invalid_rate=0).events(800)]
    fill_store(settings, events)
    publish(settings, events)
    client = open_store(settings, settings.clickhouse_database)
    try:
        names = dict(client.query("SELECT uscc, name FROM current_operators").result_rows)
    finally:
        client.close()
    _c, token = Credentials.load(credentials_file(settings.data_dir)).issue("44", NOW, PROVINCES)
    return settings, names, token


class Balancer:
    """A client in front of several workers: the first that answers, as a load balancer would."""

    def __init__(self, callers: list[Caller]) -> None:
        self.callers = callers

    def ask(self, path: str) -> tuple[int, dict]:
        last: Exception | None = None
        for caller in self.callers:
            try:
                return caller.json(path)
            except (urllib.error.URLError, ConnectionError, OSError) as exc:  # that worker is gone
                last = exc
        raise AssertionError(f"no worker answered {path}: {last}")


def test_a_killed_worker_leaves_the_answers_to_the_other(national):
    settings, names, token = national
    ports = [free_port(), free_port()]
    workers = [dataclasses.replace(settings, service_port=p) for p in ports]
    logs = [settings.data_dir / f"service-{n}.log" for n in range(2)]
    with running_service(workers[0], logs[0]) as first, running_service(workers[1], logs[1]) as second:
        callers = [Caller(w, token) for w in workers]
        for caller, proc, log in zip(callers, (first, second), logs):
            wait_until(lambda c=caller: c.json("/v1/health")[0] == 200, proc, log, "a worker to catch up")
        balancer = Balancer(callers)
        answers: list[tuple[str, int, dict]] = []
        killed = threading.Event()
        usccs = sorted(names)

        def load() -> None:
            n = 0
            while not (killed.is_set() and n > 2 * len(usccs)):
                uscc = usccs[n % len(usccs)]
                status, body = balancer.ask(f"/v1/operators/{urllib.parse.quote(uscc)}")
                answers.append((uscc, status, body))
                n += 1

        loader = threading.Thread(target=load)
        loader.start()
        wait_until(lambda: len(answers) > 50, second, logs[1], "answers before the kill")
        first.send_signal(signal.SIGKILL)
        first.wait()
        killed.set()
        loader.join(timeout=120)
        assert not loader.is_alive()
        assert len(answers) > 2 * len(usccs)
        wrong = [(u, s, b.get("record", {}).get("name")) for u, s, b in answers
                 if s != 200 or b["record"]["name"] != names[u]]
        assert wrong == []

    # started again on its own copy: it replays only what it had not stored, and answers
    with running_service(workers[0], logs[0]) as again:
        wait_until(lambda: callers[0].json("/v1/health")[0] == 200, again, logs[0], "the restarted worker")
        uscc = usccs[0]
        status, body = callers[0].json(f"/v1/operators/{urllib.parse.quote(uscc)}")
        assert status == 200 and body["record"]["name"] == names[uscc]
    caught_up = [line for line in logs[0].read_text().splitlines() if "register caught up" in line]
    assert len(caught_up) == 2 and "caught up: 0 changes applied" in caught_up[-1], caught_up
