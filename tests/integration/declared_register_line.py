"""The line for test_declared_register, run in a child process whose ``ROADX_REGISTERS_DIR`` names
a copy of the exchange's declarations with one register more (the declarations are read once per
process). It loads the files named on the command line through roadx produce files, the real stream
worker and the real sink, runs roadx check on the last one, and prints what the store, the
receipts and the check found as one JSON document."""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

from deploy import check, cli
from deploy.topics import create_topics, exchange_topics
from schemas.catalog import catalog_entries
from schemas.settings import resolve
from sinks.sink import run_sink
from sinks.store import open_store
from streams.worker import run as run_stream_worker

from test_adapter_to_store import Background

WAIT_SECONDS = 120


def query(settings, sql: str) -> list[list]:
    store = open_store(settings)
    try:
        return [list(row) for row in store.query(sql.replace("{db}", settings.clickhouse_database)).result_rows]
    except Exception:  # the sink has not made its views yet
        return []
    finally:
        store.close()


def main(party: str, files: list[tuple[str, Path]], expected_rows: int) -> dict:
    settings = resolve()
    create_topics(settings.bootstrap_servers, exchange_topics(settings))
    register, last = files[-1]
    checked = check.check_file(last, party, register, check.CheckOptions(report=last.with_name("check.errors.csv")))
    workers = [Background("stream-worker", lambda stop: run_stream_worker(settings, stop)),
               Background("sink", lambda stop: run_sink(settings, stop))]
    exits, rows = [], []
    try:
        for entity, path in files:
            exits.append(cli.main(["produce", "files", "--party", party, "--entity", entity,
                                   "--receipt-seconds", "60", str(path)]))
        deadline = time.monotonic() + WAIT_SECONDS
        while len(rows) < expected_rows and time.monotonic() < deadline:
            assert all(worker.alive() for worker in workers), [w.failure for w in workers]
            rows = query(settings, f"SELECT * FROM {{db}}.current_{register}s ORDER BY 1")
            time.sleep(0.3)
        columns = [row[0] for row in query(settings, f"SELECT name FROM system.columns WHERE database = '{{db}}' "
                                                     f"AND table = 'current_{register}s' ORDER BY position")]
        findings = query(settings, "SELECT entity_key, rule, severity, dimension FROM {db}.quality_findings "
                                   f"WHERE entity_type = '{register}' ORDER BY entity_key, rule")
    finally:
        for worker in workers:
            worker.stop()
    return {
        "exits": exits,
        "columns": columns,
        "rows": rows,
        "findings": findings,
        "receipts": [json.loads(path.with_name(path.name + ".receipt.json").read_text("utf-8")) for _, path in files],
        "check": {"rows": checked.rows, "rejected_rows": checked.rejected_rows,
                  "findings": sorted([f.stage, f.row, f.key, f.rule, f.dimension] for f in checked.findings
                                     if f.rule != "normalised")},
        "catalog": [entry for entry in catalog_entries({p: settings.parties()[p] for p in settings.provinces})
                    if entry["entity_type"] == register],
        "adapter_report": last.with_name(last.name + ".errors.csv").read_text("utf-8-sig"),
        "check_report": last.with_name("check.errors.csv").read_text("utf-8-sig"),
    }


if __name__ == "__main__":
    party, expected = sys.argv[1], int(sys.argv[2])
    pairs = [(entity, Path(path)) for entity, path in (arg.split("=", 1) for arg in sys.argv[3:])]
    print(json.dumps(main(party, pairs, expected), ensure_ascii=False, default=str))
