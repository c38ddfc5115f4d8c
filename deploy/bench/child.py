"""Processes the benchmark starts besides the workers: ``python -m deploy.bench.child adapter|faust``.

``adapter`` publishes synthetic provinces through the real adapter path (generate,
encode, sign, spool, send; each chunk a submission closed by its manifest, unless
``--no-manifests``) and writes its timing to ``--result``.
``faust`` is the peer to beat: a naive faust agent that takes one event at a time,
does one table lookup and one send; it writes the time of its first and its
``--count``-th event to ``--result`` and then idles until stopped.
Settings come from ``ROADX_*`` like every roadx process.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import time
from pathlib import Path

from schemas.settings import Settings, resolve

from ..collector import tune_collector


def run_adapter(settings: Settings, events: int, seed: int, result: Path, manifests: bool = True) -> None:
    from producers.synthetic import publish_synthetic

    started = time.time()
    report = publish_synthetic(settings, events, seed, manifests=manifests)
    finished = time.time()
    _write(result, {"started": started, "finished": finished, "produced": report.produced,
                    "valid": report.valid, "duplicates": report.duplicates, "invalid": report.invalid})


def run_faust_agent(settings: Settings, app_id: str, source: str, target: str, count: int, result: Path) -> None:
    import faust

    app = faust.App(
        app_id, broker=f"kafka://{settings.bootstrap_servers}", store="memory://",
        topic_partitions=settings.partitions, broker_session_timeout=settings.session_timeout_ms / 1000,
        broker_heartbeat_interval=1.0, consumer_auto_offset_reset="earliest", web_enabled=False,
        datadir=str((settings.data_dir / "faust").absolute()),
    )
    table = app.Table("entities", default=int, partitions=settings.partitions)
    raw = {"key_type": bytes, "value_type": bytes, "key_serializer": "raw", "value_serializer": "raw"}
    inbound = app.topic(source, **raw)
    outbound = app.topic(target, **raw)
    seen = {"n": 0, "first": 0.0}

    @app.agent(inbound)
    async def naive(stream):
        async for key, value in stream.items():
            if seen["n"] == 0:
                seen["first"] = time.time()
            table.get(key.decode("utf-8"))
            await outbound.send(key=key, value=value)
            seen["n"] += 1
            if seen["n"] == count:
                _write(result, {"first": seen["first"], "last": time.time(), "count": count})

    worker = faust.Worker(app, loglevel="WARNING", quiet=True)
    worker.execute_from_commandline()


def _write(path: Path, data: dict) -> None:
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(data), "utf-8")
    tmp.replace(path)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m deploy.bench.child")
    sub = parser.add_subparsers(dest="kind", required=True)
    adapter = sub.add_parser("adapter")
    adapter.add_argument("--events", type=int, required=True)
    adapter.add_argument("--seed", type=int, required=True)
    adapter.add_argument("--result", type=Path, required=True)
    adapter.add_argument("--no-manifests", action="store_true", help="send the events alone, closing no submission")
    agent = sub.add_parser("faust")
    agent.add_argument("--app-id", required=True)
    agent.add_argument("--source", required=True)
    agent.add_argument("--target", required=True)
    agent.add_argument("--count", type=int, required=True)
    agent.add_argument("--result", type=Path, required=True)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s bench-child %(levelname)s %(message)s")
    tune_collector()  # as every roadx part runs (the adapter as ``roadx worker synthetic``)
    settings = resolve()
    if args.kind == "adapter":
        run_adapter(settings, args.events, args.seed, args.result, manifests=not args.no_manifests)
    else:
        sys.argv = [sys.argv[0], "worker"]
        run_faust_agent(settings, args.app_id, args.source, args.target, args.count, args.result)
    return 0


if __name__ == "__main__":
    sys.exit(main())
