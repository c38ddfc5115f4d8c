"""The information service phase of ``roadx bench``: ``roadx worker service`` over a big register.

``national.changes`` is filled with ``service_entities`` entities (operators, and an operating
permit of each) as framed Avro change envelopes keyed by entity key. Then:

- a new worker (empty data directory) reads it all: the time from its start to ``/v1/health``
  answering 200;
- it is SIGKILLed and started again on the same data directory: recovery is the time from
  that start to 200 (it replays only what follows its stored positions);
- point lookups (``/v1/operators/{uscc}`` and ``/v1/licences/{no}/verification`` in turn,
  over entities spread through the register) offered open loop at each rate of
  ``SERVICE_LOOKUP_RATES`` for ``service_seconds`` (``deploy.bench.http_load``), after an
  untimed warm-up;
- freshness: updates of operators sent at ``FRESHNESS_RATE`` for ``service_seconds``, every
  ``FRESHNESS_SAMPLE_EVERY``-th asked for until the service answers its new ``seq``.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import random
import time
import urllib.parse
import urllib.request
from dataclasses import dataclass
from typing import Any, Iterator

from confluent_kafka import Producer

from producers.synthetic.identities import make_id_number, make_phone, make_uscc, pick, uuid4_text
from producers.synthetic.regions import regions_of
from schemas.codec import EventCodec
from schemas.contract import change_event
from schemas.credentials import Credentials, credentials_file
from schemas.registry import make_registry
from schemas.settings import Settings

from ..broker import free_port
from ..errors import StackError
from .http_load import FRESHNESS_TIMEOUT, POLL_SECONDS, Answers, Change, freshness, offered_load
from .measure import STAGE_TIMEOUT, latency_percentiles, send_all
from .report import MS, SECONDS, SERVICE_LOOKUP_RATES, lookup_figure, percentile
from .run import Bench
from .watch import Child, wait_until

RATE_LIMIT = 100_000.0  # requests/s a credential may make: far above what the phase offers
WARM_UP_SECONDS = 1.0  # lookups offered at the lowest rate before the timed runs, not timed
FRESHNESS_RATE = 1_000
FRESHNESS_SAMPLE_EVERY = 25
LOOKUP_PATHS = 10_000  # distinct entities asked about
SYSTEM = "bench"


@dataclass
class Register:
    """The entities loaded: operator i's USCC and province; licence i is operator i's permit."""

    usccs: list[str]
    provinces: list[str]
    licences: int


@dataclass
class Started:
    child: Child
    base_url: str
    seconds: float  # from start to /v1/health 200
    applied: float  # roadx_service_changes_applied_total when ready


def service(bench: Bench) -> None:
    opts = bench.options
    settings = bench.phase("svc").with_overrides(service_rate_per_second=RATE_LIMIT)
    register = Register([], [], 0)
    started = time.monotonic()
    loaded = send_all(bench.bootstrap, settings.topics.national_changes,
                      _register_messages(settings, register, opts.service_entities, opts.seed))
    bench.say(f"service: {loaded:,} entities on {settings.topics.national_changes} "
              f"({time.monotonic() - started:.0f}s to encode and send)")
    party = settings.provinces[0]
    _credential, token = Credentials.load(credentials_file(settings.data_dir)).issue(
        party, dt.datetime.now(dt.timezone.utc), settings.provinces)

    new = _start(bench, settings, "service_new_worker")
    new.child.kill()
    bench.add("service_new_worker_s", "service: new worker ready (empty data dir)", new.seconds, SECONDS,
              f"start → /v1/health 200 after reading {new.applied:,.0f} changes "
              f"({new.applied / new.seconds:,.0f}/s incl. start-up)")
    worker = _start(bench, settings, "service_worker")
    bench.add("service_recovery_s", "service: recovery after SIGKILL", worker.seconds, SECONDS,
              f"restart on the same data dir → /v1/health 200; {worker.applied:,.0f} changes replayed")
    try:
        paths = _lookup_paths(register, opts.seed)
        asyncio.run(offered_load(worker.base_url, token, paths, SERVICE_LOOKUP_RATES[0], WARM_UP_SECONDS))
        for per_second in SERVICE_LOOKUP_RATES:
            bench.say(f"service: offering {per_second:,} lookups/s for {opts.service_seconds:g}s")
            answers = asyncio.run(offered_load(worker.base_url, token, paths, per_second, opts.service_seconds))
            _add_lookups(bench, per_second, answers, party)
        _freshness(bench, settings, worker, token, register)
    finally:
        worker.child.stop()
    bench.add_rss("rss_service_mib", "peak RSS service worker, new", new.child,
                  f"reading {loaded:,} entities into an empty data dir; the recovered worker, through the lookup "
                  f"and freshness runs: {worker.child.peak_rss_mib:,.0f} MiB")


def _start(bench: Bench, settings: Settings, name: str) -> Started:
    """Start a service worker on ``settings``' data directory; wait for /v1/health 200."""
    port, metrics = free_port(), free_port()
    base_url = f"http://127.0.0.1:{port}"
    began = time.time()
    child = bench.spawn_worker(name, "service", settings.with_overrides(service_port=port, metrics_port=metrics))
    bench.say(f"service: waiting for {name} to read the register")
    ready = wait_until(lambda: _healthy(base_url), STAGE_TIMEOUT, f"the {name} to become ready", child.check,
                       every=0.02)
    return Started(child, base_url, ready - began, _metric(metrics, "roadx_service_changes_applied_total"))


def _add_lookups(bench: Bench, per_second: int, answers: Answers, party: str) -> None:
    if not answers.latencies_ms:
        raise StackError(f"no lookup at {per_second}/s was answered: {answers.describe_not_ok()}")
    p50, p99 = latency_percentiles(answers.latencies_ms)
    asked = sum(answers.statuses.values())
    statuses = (f"{answers.not_ok:,} NOT answered 200 ({answers.describe_not_ok()})" if answers.not_ok
                else "all answered 200")
    bench.add(lookup_figure(50, per_second), f"service lookup p50 at {per_second:,} req/s", p50, MS,
              f"{asked:,} requests open loop, operator and licence verification in turn, as party {party}, "
              f"after a {WARM_UP_SECONDS:g}s warm-up; scheduled send → answer; {statuses}")
    bench.add(lookup_figure(99, per_second), f"service lookup p99 at {per_second:,} req/s", p99, MS,
              f"{len(answers.latencies_ms):,} answers timed; {statuses}")


def _freshness(bench: Bench, settings: Settings, worker: Started, token: str, register: Register) -> None:
    codec = EventCodec(make_registry(None))
    producer = Producer({"bootstrap.servers": bench.bootstrap, "linger.ms": 5})
    operators = len(register.usccs)

    def update(i: int) -> Change:
        n = i % operators
        uscc, province, seq = register.usccs[n], register.provinces[n], 2 + i // operators
        record = _operator(n, uscc, province, f"运输有限公司（第{seq}版）")
        event = _event("u", "operator", record, province, seq)
        return Change(event["entity_key"].encode("utf-8"), codec.encode(event), f"/v1/operators/{uscc}", seq)

    seconds = bench.options.service_seconds
    bench.say(f"service: sending {FRESHNESS_RATE:,} changes/s for {seconds:g}s, "
              f"asking for every {FRESHNESS_SAMPLE_EVERY}th until it is answered")
    delays, sent, unseen = asyncio.run(freshness(worker.base_url, token, producer, settings.topics.national_changes,
                                                 update, FRESHNESS_RATE, seconds, FRESHNESS_SAMPLE_EVERY))
    if not delays:
        raise StackError(f"none of the {sent:,} changes sent was seen in the service's answers")
    missing = f"; {unseen:,} sampled changes NOT seen within {FRESHNESS_TIMEOUT:g}s" if unseen else ""
    bench.add("service_freshness_p99_ms", "service freshness p99", percentile(delays, 99), MS,
              f"{sent:,} operator updates at {FRESHNESS_RATE:,}/s; {len(delays):,} sampled, each asked for every "
              f"{POLL_SECONDS * 1000:g} ms from its send until answered with its seq; "
              f"p50 {percentile(delays, 50):,.0f} ms{missing}")


def _register_messages(settings: Settings, register: Register, entities: int,
                       seed: int) -> Iterator[tuple[bytes, bytes]]:
    """(key, value) of ``entities`` creates: operator, its licence, next operator…; fills ``register``."""
    codec = EventCodec(make_registry(None))
    rng = random.Random(seed)
    used: set[str] = set()
    for i in range(entities):
        n = i // 2
        if i % 2 == 0:
            province = settings.provinces[n % len(settings.provinces)]
            county = pick(rng, regions_of(province).current_counties)
            uscc = make_uscc(rng, county)
            while uscc in used:
                uscc = make_uscc(rng, county)
            used.add(uscc)
            register.usccs.append(uscc)
            register.provinces.append(province)
            event = _event("c", "operator", _operator(n, uscc, province, "运输有限公司"), province, 1)
        else:
            province, uscc = register.provinces[n], register.usccs[n]
            event = _event("c", "licence", _licence(n, uscc, province), province, 1)
            register.licences += 1
        yield event["entity_key"].encode("utf-8"), codec.encode(event)


def _lookup_paths(register: Register, seed: int) -> list[str]:
    """Operator and verification questions in turn, about entities spread through the register."""
    rng = random.Random(seed + 1)
    paths = []
    for k in range(LOOKUP_PATHS):
        if k % 2 == 0 or not register.licences:
            paths.append(f"/v1/operators/{register.usccs[rng.randrange(len(register.usccs))]}")
        else:
            n = rng.randrange(register.licences)
            number = _licence_no(n, register.provinces[n])
            paths.append(f"/v1/licences/{urllib.parse.quote(number)}/verification")
    return paths


def _event(op: str, entity_type: str, record: dict[str, Any], province: str, seq: int) -> dict[str, Any]:
    return change_event(event_id=uuid4_text(random.getrandbits(128)), op=op, entity_type=entity_type, before=None,
                        after=record, province=province, system=SYSTEM, table=entity_type, seq=seq,
                        ts_ms=int(time.time() * 1000))


def _operator(n: int, uscc: str, province: str, name: str) -> dict[str, Any]:
    """Operator ``n``, the same each time but for ``name`` (its personal numbers are drawn from ``n``)."""
    rng = random.Random(n)
    return {"uscc": uscc, "name": name, "region_code": uscc[2:8], "permit_no": _licence_no(n, province),
            "business_scope": "道路旅客运输", "status": "active",
            "legal_rep_id_number": make_id_number(rng, regions_of(province)), "contact_phone": make_phone(rng)}


def _licence(n: int, uscc: str, province: str) -> dict[str, Any]:
    today = dt.date.today()
    return {"licence_no": _licence_no(n, province), "licence_type": "operating_permit",
            "holder_key": f"operator:{uscc}", "issuer_region_code": uscc[2:8],
            "valid_from": today - dt.timedelta(days=365),
            "valid_until": today + dt.timedelta(days=3 * 365), "status": "valid"}


def _licence_no(n: int, province: str) -> str:
    return f"交运管许可{province}{n:08d}"


def _healthy(base_url: str) -> bool:
    try:
        with urllib.request.urlopen(f"{base_url}/v1/health", timeout=2) as response:
            return response.status == 200
    except OSError:  # not listening yet, or 503 (urllib.error.HTTPError) while it reads
        return False


def _metric(port: int, name: str) -> float:
    """The value of one sample of the worker's /metrics (Prometheus text)."""
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as response:
            text = response.read().decode("utf-8")
    except OSError as exc:
        raise StackError(f"cannot read the service's metrics on port {port}: {exc}") from exc
    for line in text.splitlines():
        if line.startswith(name + " "):
            return float(line.split()[1])
    raise StackError(f"the service's metrics have no {name}")
