"""The worker shell: one way to start every long-running part, one exit-status table."""

from __future__ import annotations

import gc
import logging
import os
import signal

import pytest

from deploy import cli, worker
from deploy.collector import COLLECT_AFTER
from deploy.commands import worker as worker_command
from deploy.errors import StartError
from deploy.stack import PARTS
from producers.errors import PublishError
from schemas.errors import SettingsError
from schemas.settings import Settings
from sinks.errors import StoreError
from streams.errors import WorkerError


@pytest.fixture(autouse=True)
def no_roadx_environment(monkeypatch):
    for name in [n for n in os.environ if n.startswith("ROADX_")]:
        monkeypatch.delenv(name)


@pytest.fixture(autouse=True)
def logger_levels_restored():
    """The shell sets the project's loggers to INFO; other tests see them as they were."""
    levels = {name: logging.getLogger(name).level for name in worker.PROJECT_LOGGERS}
    yield
    for name, level in levels.items():
        logging.getLogger(name).setLevel(level)


@pytest.mark.parametrize("failure", [WorkerError("batch 7 cannot be written"), StoreError("insert refused"),
                                     PublishError("spool entries not delivered")])
def test_a_part_that_fails_while_running_exits_70_naming_why(failure, tmp_path, caplog):
    def work(stop):
        raise failure

    with caplog.at_level(logging.CRITICAL, logger="deploy.worker"):
        assert worker.run_part("stream worker", Settings(data_dir=tmp_path), work) == worker.EXIT_FAILED == 70
    assert f"stream worker stopped: {failure}" in caplog.text


def test_a_bad_setting_is_not_a_running_failure_and_reaches_the_cli_as_exit_2(tmp_path):
    def work(stop):
        raise SettingsError("cannot read the SASL password file")

    with pytest.raises(SettingsError):
        worker.run_part("sink", Settings(data_dir=tmp_path), work)


def test_sigterm_and_sigint_stop_the_part_after_the_batch_in_hand_and_leave_the_handlers_as_they_were(tmp_path):
    before = {sig: signal.getsignal(sig) for sig in (signal.SIGTERM, signal.SIGINT)}
    batches = []

    def work(stop):
        for sig in (signal.SIGTERM, signal.SIGINT):
            stop.clear()
            os.kill(os.getpid(), sig)
            assert stop.wait(5)
            batches.append(sig)  # the batch in hand is finished, then the part returns
        return None

    assert worker.run_part("sink", Settings(data_dir=tmp_path), work) == worker.EXIT_DONE
    assert batches == [signal.SIGTERM, signal.SIGINT]
    assert {sig: signal.getsignal(sig) for sig in before} == before


def test_a_part_that_finishes_returns_its_own_status(tmp_path):
    assert worker.run_part("files adapter", Settings(data_dir=tmp_path), lambda stop: 1) == 1


def test_a_part_runs_with_the_youngest_generation_collected_later_and_the_older_ones_as_python_does(tmp_path):
    before = gc.get_threshold()
    gc.set_threshold(700, 10, 10)  # Python's own
    try:
        seen = worker.run_part("files adapter", Settings(data_dir=tmp_path), lambda stop: gc.get_threshold())
    finally:
        gc.set_threshold(*before)
    assert seen == (COLLECT_AFTER, 10, 10)
    assert COLLECT_AFTER > 700


def test_logging_puts_the_projects_loggers_at_info_in_the_format_chaos_reads_back():
    worker.setup_logging()
    for name in ("streams.runner", "streams.handover", "roadx.sinks", "deploy.worker"):
        assert logging.getLogger(name).getEffectiveLevel() == logging.INFO
    assert worker.LOG_FORMAT == "%(asctime)s %(name)s %(levelname)s %(message)s"


@pytest.mark.parametrize("part, name", [("streams", "stream worker"), ("sink", "sink"),
                                        ("service", "information service"), ("cases", "case workflows")])
def test_a_worker_without_bootstrap_servers_cannot_start(part, name, tmp_path, capsys):
    assert cli.main(["worker", part, "--data-dir", str(tmp_path)]) == worker.EXIT_ERROR == 2
    assert capsys.readouterr().err == (f"roadx: error: the {name} needs Kafka bootstrap servers "
                                       f"(ROADX_BOOTSTRAP_SERVERS)\n")


def test_a_metrics_port_already_taken_is_a_start_error(tmp_path, monkeypatch):
    import socket

    monkeypatch.setattr(worker, "_serving", None)
    taken = socket.socket()
    taken.bind(("127.0.0.1", 0))
    taken.listen(1)
    try:
        port = taken.getsockname()[1]
        with pytest.raises(StartError, match=f"cannot serve metrics on 127.0.0.1:{port}"):
            worker.serve_metrics(Settings(data_dir=tmp_path, metrics_port=port))
    finally:
        taken.close()


def test_every_spawner_starts_a_part_as_roadx_worker_does():
    assert worker.worker_argv("streams") == ["-m", "deploy.cli", "worker", "streams"]  # deploy.cli:main is roadx
    parser = cli.build_parser()
    for part in PARTS:
        args = parser.parse_args(worker.worker_argv(part)[2:])
        assert args.handler is {"streams": worker_command.cmd_streams, "sink": worker_command.cmd_sink,
                                 "service": worker_command.cmd_service,
                                 "cases": worker_command.cmd_cases}[part]
    synthetic = parser.parse_args(worker.worker_argv("synthetic", "--events", "5", "--seed", "1")[2:])
    assert synthetic.handler is worker_command.cmd_synthetic


def test_roadx_worker_help_lists_the_deployed_parts_only(capsys):
    with pytest.raises(SystemExit):
        cli.build_parser().parse_args(["worker", "--help"])
    out = capsys.readouterr().out
    assert "{streams,sink,service,cases}" in out and "synthetic" not in out


LOST_INTERRUPT = """
import sys, time
from deploy.worker import interrupt_on_sigterm
interrupt_on_sigterm()

class Finalizer:
    def __del__(self):
        raise {raised}  # where a signal's interrupt can land and cannot propagate from

try:
    Finalizer()
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        pass
except KeyboardInterrupt:
    sys.exit(130)
"""


@pytest.mark.parametrize("sigint", [signal.SIG_DFL, signal.SIG_IGN], ids=["foreground", "started-in-background"])
def test_an_interrupt_lost_in_a_finalizer_still_stops_the_command(sigint):
    """A SIGTERM (or Ctrl-C) whose KeyboardInterrupt landed in a weakref callback of an import lock was
    printed as "Exception ignored" and a terminated `roadx bench` ran on to its end; so it did, when
    started in the background by a shell (SIGINT ignored), until it was raised again as a SIGTERM."""
    import subprocess
    import sys

    done = subprocess.run([sys.executable, "-c", LOST_INTERRUPT.format(raised="KeyboardInterrupt")],
                          capture_output=True, text=True, timeout=60,
                          preexec_fn=lambda: signal.signal(signal.SIGINT, sigint))
    assert done.returncode == 130, done.stderr
    assert "Exception ignored" not in done.stderr


def test_other_exceptions_of_a_finalizer_are_still_reported_as_python_does():
    import subprocess
    import sys

    script = LOST_INTERRUPT.format(raised="ValueError('from a finalizer')").replace("+ 10", "+ 0.1")
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert "Exception ignored" in done.stderr and "ValueError: from a finalizer" in done.stderr
