"""Does the information service answer what the store says? The demo's check of the service.

Once the line has drained, ``check_service`` waits until the service's register holds every
change the store holds (its ``roadx_service_changes_applied_total``), then, with a
credential issued for the first party (revoked afterwards), asks it — in one batch lookup,
as a province checks its own register — to verify licences of every party and to look up
operators, and compares each answer with the store's.
"""

from __future__ import annotations

import datetime as dt
import json
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from typing import Any

from schemas.credentials import Credentials, credentials_file
from schemas.pii import PiiMasker
from schemas.settings import Settings
from sinks.store_client import store_client
from sinks.verify import verify_licence

from .errors import StackError
from .scrape import scrape, totals
from .stack import StackInfo

SAMPLE = 100  # licences verified and operators looked up


@dataclass
class ServiceCheck:
    party: str = ""
    checked: int = 0
    agreed: int = 0
    caught_up_seconds: float = 0.0
    disagreements: list[str] = field(default_factory=list)


def check_service(settings: Settings, info: StackInfo, timeout: float = 120) -> ServiceCheck:
    """Ask the running stack's service what the store answers, and count the agreements."""
    party = settings.provinces[0]
    result = ServiceCheck(party=party)
    client = store_client(settings, info.store_http)
    credentials = Credentials.load(credentials_file(settings.data_dir))
    credential, token = credentials.issue(party, dt.datetime.now(dt.timezone.utc), settings.provinces)
    try:
        db = settings.clickhouse_database
        stored = int(client.command(f"SELECT count() FROM {db}.change_log FINAL"))
        result.caught_up_seconds = _wait_applied(info, stored, timeout)
        pii = PiiMasker(settings.pii_key())
        numbers = [r[0] for r in client.query(
            f"SELECT licence_no FROM {db}.current_licences WHERE position(licence_no, '*') = 0 "
            f"ORDER BY cityHash64(licence_no) LIMIT {SAMPLE}").result_rows]
        operators = client.query(f"SELECT uscc, name FROM {db}.current_operators "
                                 f"ORDER BY cityHash64(uscc) LIMIT {SAMPLE}").result_rows
        asked = ([{"kind": "verification", "id": n} for n in numbers]
                 + [{"kind": "operator", "id": uscc} for uscc, _name in operators])
        answers = _post(f"{info.service_url}lookups", token, {"lookups": asked})
        if len(answers) != len(asked):
            raise StackError(f"the service answered {len(answers)} of {len(asked)} lookups")
        for number, answer in zip(numbers, answers):
            expected = verify_licence(client, db, number, pii).status
            _compare(result, f"licence {number}", expected, answer.get("answer", {}).get("status", answer))
        for (uscc, name), answer in zip(operators, answers[len(numbers):]):
            _compare(result, f"operator {uscc}", name, answer.get("answer", {}).get("record", {}).get("name", answer))
    finally:
        credentials.revoke(credential.id, dt.datetime.now(dt.timezone.utc))
        client.close()
    return result


def _compare(result: ServiceCheck, what: str, expected: Any, got: Any) -> None:
    result.checked += 1
    if expected == got:
        result.agreed += 1
    elif len(result.disagreements) < 5:
        result.disagreements.append(f"{what}: the store says {expected!r}, the service {got!r}")


def _wait_applied(info: StackInfo, stored: int, timeout: float) -> float:
    started = time.monotonic()
    applied = 0
    while time.monotonic() - started < timeout:
        applied = int(sum(totals(scrape(info.metrics["service"]), "roadx_service_changes_applied_total", "").values()))
        if applied >= stored:
            return time.monotonic() - started
        time.sleep(0.2)
    raise StackError(f"the information service holds {applied:,} changes after {timeout:.0f}s; the store {stored:,}")


def _post(url: str, token: str, body: dict[str, Any]) -> list[dict[str, Any]]:
    request = urllib.request.Request(url, data=json.dumps(body).encode("utf-8"), method="POST",
                                     headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=60) as answer:
            return json.loads(answer.read())["answers"]
    except (urllib.error.URLError, OSError, ValueError, KeyError) as exc:
        raise StackError(f"cannot ask the service at {url}: {exc}") from exc
