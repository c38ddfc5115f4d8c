"""``roadx status`` shows each province's response timeliness to the cases routed to it this
month, read from a real chDB store the sink filled from the real embedded broker: open
workflows, open overdue, received and answered on time, the median time to answer, worst
first, as text and as JSON; a store that cannot be read is one line, the rest still shown.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import json
import os
import uuid

import pytest
from prometheus_client import CollectorRegistry, Counter, start_http_server

from deploy.broker import free_port
from deploy.commands.status import add_parser, cmd_status
from deploy.stack import StackInfo
from schemas.settings import Settings

from test_sink import sink_until_drained
import test_sink_cases
from test_sink_cases import Publisher, at, case

pytestmark = pytest.mark.integration

exchange = test_sink_cases.exchange  # the fixture: a broker's topics for 44, 11 and 31, a store in tmp_path
NOW = dt.datetime(2024, 6, 20, 12, tzinfo=dt.timezone.utc)  # status's "now": the current month is June 2024


def status_args(*argv: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="roadx")
    add_parser(parser.add_subparsers(dest="command"), lambda p: p)
    return parser.parse_args(["status", *argv])


@contextlib.contextmanager
def cases_metrics():
    """A live metrics endpoint like the case workflows' part, at 127.0.0.1:PORT."""
    registry = CollectorRegistry()
    Counter("roadx_cases_routed", "", ["target"], registry=registry).labels("31").inc(6)
    port = free_port()
    server, thread = start_http_server(port, addr="127.0.0.1", registry=registry)
    try:
        yield f"cases=127.0.0.1:{port}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)


def run_status(settings: Settings, *argv: str) -> int:
    return cmd_status(settings, status_args("--interval", "0.1", *argv), sleep=lambda s: None, now=lambda: NOW)


def timeliness_lines(out: str) -> list[list[str]]:
    """The rows of the case timeliness table, split into their figures."""
    lines = out.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith("case timeliness"))
    assert lines[start] == "case timeliness, cases routed 2024-06 (from the store, worst first)"
    assert lines[start + 1].split()[:3] == ["target", "open", "overdue"]
    rows = []
    for line in lines[start + 2:]:
        if not line.startswith("  "):
            break
        rows.append(line.split())
    return rows


def test_status_ranks_the_provinces_by_their_timeliness_this_month(exchange, capsys):
    pub = Publisher(exchange)
    quick, waiting, declined = case("粤深交执2024201"), case("粤深交执2024202"), case("粤深交执2024203")
    prompt, late, silent = case("粤深交执2024204"), case("粤深交执2024205"), case("粤深交执2024206")
    may = case("京交执2024009", source="11")
    c_quick, c_waiting, c_declined, c_prompt, c_late, c_silent, c_may = (str(uuid.uuid4()) for _ in range(7))
    # 11 acknowledges everything within half a day, answers in two days and in one, declines
    # in twelve hours, and has one case still open within its deadlines.
    pub.route(quick, "11", c_quick, at(6, 3))
    pub.forward(quick, c_quick, "11", "receipt", at(6, 3, 9))
    pub.forward(quick, c_quick, "11", "answer", at(6, 5), outcome="penalty")
    pub.route(waiting, "11", c_waiting, at(6, 18))
    pub.forward(waiting, c_waiting, "11", "receipt", at(6, 18, 9))
    pub.route(declined, "11", c_declined, at(6, 8))
    pub.forward(declined, c_declined, "11", "decline", at(6, 8, 20), reason="不属本省管辖")
    pub.route(prompt, "11", c_prompt, at(6, 12))
    pub.forward(prompt, c_prompt, "11", "receipt", at(6, 12, 10))
    pub.forward(prompt, c_prompt, "11", "answer", at(6, 13), outcome="closed")
    # 31 acknowledges one case three days late and is still working on it; the other it never
    # acknowledged: open past its receipt deadline, alerted.
    pub.route(late, "31", c_late, at(6, 4))
    pub.forward(late, c_late, "31", "receipt", at(6, 7))
    pub.forward(late, c_late, "31", "progress", at(6, 10))
    pub.route(silent, "31", c_silent, at(6, 10))
    pub.alert(c_silent, silent, "31", "receipt", at(6, 10), at(6, 11, 9))
    # 44's only case was routed in May, not this month: 44 is not listed.
    pub.route(may, "44", c_may, at(5, 28), origin="11")
    pub.flush()
    sink_until_drained(exchange, pub.sent)

    with cases_metrics() as target:
        assert run_status(exchange, "--metrics", target) == 0
        text = capsys.readouterr().out
        assert run_status(exchange, "--metrics", target, "--json") == 0
        shown = json.loads(capsys.readouterr().out)

    assert "  routed 6   replies applied 0" in text  # the metrics' totals are still there
    assert timeliness_lines(text) == [
        ["31", "2", "1", "0/1", "0/0", "—"],  # worst first: one open overdue
        ["11", "1", "0", "4/4", "3/3", "1.0", "d"],  # the median of 2 d, 1 d and 12 h
    ]
    timeliness = shown["case_timeliness"]
    assert (timeliness["month"], timeliness["error"]) == ("2024-06", "")
    figures = [(p["province"], p["routed"], p["open"], p["overdue"], p["received_on_time"], p["received"],
                p["answered_on_time"], p["answered"], p["median_answer_ms"], p["alerts"])
               for p in timeliness["provinces"]]
    assert figures == [("31", 2, 2, 1, 0, 1, 0, 0, None, {"receipt": 1}),
                       ("11", 4, 1, 0, 4, 4, 3, 3, 86_400_000, {})]


def test_a_store_that_cannot_be_read_is_one_line_and_the_rest_is_shown(tmp_path, capsys):
    with cases_metrics() as target:
        # no store in the data directory, no stack: the processes are still summarised
        assert run_status(Settings(data_dir=tmp_path / "empty"), "--metrics", target) == 0
        out = capsys.readouterr().out
        [line] = [line for line in out.splitlines() if "case timeliness" in line]
        assert line == (f"case timeliness 2024-06: the store cannot be read: no store at {tmp_path / 'empty' / 'store'}: "
                        "run `roadx demo` first (or start the stack: `roadx up`)")
        assert "  up   cases" in out and "consumer lag" in out and "Traceback" not in out

        # a running stack whose store endpoint does not answer: DOWN, and said once more for the timeliness
        settings = Settings(data_dir=tmp_path)
        dead = f"127.0.0.1:{free_port()}"
        StackInfo(os.getpid(), "127.0.0.1:1", str(settings.data_dir), store_http=dead).write(settings.stack_file)
        assert run_status(settings, "--metrics", target, "--json") == 1
        shown = json.loads(capsys.readouterr().out)
        assert shown["store"]["up"] is False and shown["processes"][0]["up"] is True
        assert shown["case_timeliness"] == {"month": "2024-06", "provinces": [],
                                            "error": f"the store at http://{dead}/ does not answer"}
