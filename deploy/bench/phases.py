"""The phases of ``roadx bench``, in the order ``PHASES`` runs them; each adds its figures to the run.

Each on its own topic prefix and data directory under the run's temporary directory:
``ceilings`` (fastavro encode/decode of the envelope, licence seals signed and verified, a plain
confluent-kafka consume→produce loop and the adapter's two largest parts, generating and
encoding, in this process; the naive faust agent as a child process), ``pipeline`` (adapter
child → ``roadx worker streams`` over the loaded ``prov.*`` topics → ``roadx worker sink`` over
what the worker wrote, one after the other; then the same events sent without submissions
through a fresh worker, for what manifests cost it), ``peers`` (faust-streaming and Quix Streams running the worker's stage over the topics the
worker processed, ``deploy.bench.peer_child``, their outputs compared with the worker's; then the
stage alone in this process, ``measure.stage_alone``), ``end_to_end``
(worker and sink running, an adapter child publishes; then a paced producer at a quarter, half and
all of ``--latency-rate`` for the latency figures), ``state_worker`` (a worker opening a state store filled
with many entities) and ``service`` (the information service: ``deploy.bench.service``).
Rates of the workers are read from outside: committed offsets of their consumer groups.
"""

from __future__ import annotations

import datetime as dt
import importlib.util
import json
import math
import os
import time
from dataclasses import dataclass
from typing import Callable, Sequence

from schemas.settings import Settings

from ..errors import StackError
from ..topics import create_topics
from .measure import (STATE_FILL_BATCH, avro_rates, fill_topic, kafka_loop_rate, latency_percentiles, paced_send,
                      stage_alone)
from .report import EVENTS_PER_S, MS, PER_100K, against_peers, cpu_per_100k, rate, serial_rate
from .run import Bench
from .service import service
from .watch import Child, CommitLog, GroupProgress, count_messages, cpu_seconds, wait_until

CEILING_SAMPLE = 50_000
SEAL_SAMPLE = 2_000
LOOP_MAX = 200_000
TIMEOUT = 900.0


def ceilings(bench: Bench) -> None:
    from producers.synthetic import SyntheticProvinces
    from schemas.codec import EventCodec
    from schemas.registry import make_registry

    opts = bench.options
    settings = bench.phase("ceil")
    sample = min(max(opts.events, opts.faust_events, 2_000), CEILING_SAMPLE)
    bench.say(f"ceilings: generating {sample:,} envelope events")
    started = time.perf_counter()
    events = [g.event for g in SyntheticProvinces(settings.provinces, opts.seed).events(sample)]
    generated = rate(sample, time.perf_counter() - started)
    encode, decode, _bodies = avro_rates(events)
    bench.add("avro_encode", "fastavro encode (envelope, schemaless)", encode, EVENTS_PER_S, f"{sample:,} events")
    bench.add("avro_decode", "fastavro decode (envelope, schemaless)", decode, EVENTS_PER_S, f"{sample:,} events")
    seal_rates(bench, settings)

    codec = EventCodec(make_registry(None))
    keys = {p: settings.province_key(p) for p in settings.provinces}
    started = time.perf_counter()
    messages = [(e["entity_key"].encode("utf-8"), codec.encode(e, keys[e["source"]["province"]])) for e in events]
    sealed = rate(sample, time.perf_counter() - started)
    _adapter_parts(bench, generated, sealed, sample)
    parts = settings.partitions
    loop_count = min(max(opts.events, 2_000), LOOP_MAX)
    source, target = "ceil.loop.in", "ceil.loop.out"
    create_topics(bench.bootstrap, [(source, parts), (target, parts)])
    bench.say(f"ceilings: loading {loop_count:,} messages for the consume→produce loop")
    fill_topic(bench.bootstrap, source, messages, loop_count)
    loop = kafka_loop_rate(bench.bootstrap, source, target, parts, loop_count)
    bench.add("kafka_loop", "confluent-kafka consume→produce loop", loop, EVENTS_PER_S, f"{loop_count:,} messages")

    faust_in, faust_out = "ceil.faust.in", "ceil.faust.out"
    create_topics(bench.bootstrap, [(faust_in, parts), (faust_out, parts)])
    fill_topic(bench.bootstrap, faust_in, messages, opts.faust_events)
    result = settings.data_dir / "faust.json"
    bench.say(f"ceilings: naive faust agent over {opts.faust_events:,} events (a child process)")
    child = bench.spawn("faust_agent", "deploy.bench.child", settings, "faust", "--app-id", "ceil-naive-faust",
                        "--source", faust_in, "--target", faust_out, "--count", str(opts.faust_events),
                        "--result", str(result))
    wait_until(result.exists, TIMEOUT, "the faust agent to finish", child.check, every=0.2)
    timing = json.loads(result.read_text("utf-8"))
    child.stop()
    bench.add("faust_agent", "naive faust agent (1 event, 1 lookup, 1 send)",
              rate(timing["count"] - 1, timing["last"] - timing["first"]), EVENTS_PER_S,
              f"{opts.faust_events:,} events, first to last event")
    bench.add_rss("rss_faust_mib", "peak RSS naive faust agent", child)


def _adapter_parts(bench: Bench, generated: float, sealed: float, sample: int) -> None:
    """The adapter's two largest parts, each in this process, and the rate it could reach doing them alone."""
    note = f"{sample:,} events, one thread"
    bench.add("source_generate", "synthetic generation (the adapter's source)", generated, EVENTS_PER_S, note)
    bench.add("codec_encode_seal", "event codec: check, encode and sign (the adapter's)", sealed, EVENTS_PER_S, note)
    bench.add("adapter_bound", "adapter at most: generation, then the codec, and nothing else",
              serial_rate(generated, sealed), EVENTS_PER_S, "one after the other on one thread; the adapter "
              "also digests, spools, sends and closes submissions")


def run_adapter(bench: Bench, settings: Settings, events: int, seed: int,
                manifests: bool = True) -> tuple[Child, dict]:
    """Publish ``events`` through an adapter child process; returns it (reaped) and its timing."""
    result = settings.data_dir / f"adapter-{seed}.json"
    child = bench.spawn("adapter", "deploy.bench.child", settings, "adapter", "--events", str(events),
                        "--seed", str(seed), "--result", str(result), *([] if manifests else ["--no-manifests"]))
    status = child.wait(TIMEOUT)
    if status != 0:
        raise StackError(f"the adapter process exited with code {status}; see {child.log_path}:\n"
                         f"{child.log_path.read_text('utf-8', errors='replace')[-2000:]}")
    return child, json.loads(result.read_text("utf-8"))


def pipeline(bench: Bench) -> None:
    settings = bench.phase("pipe")
    _load_and_drain(bench, settings)
    _without_manifests(bench, bench.figures["stream_worker"].value)

    from sinks.sink import TopicRoles

    sink_topics = TopicRoles.from_settings(settings).topics
    drained = _drain(bench, settings, "sink", "sink", settings.topics.sink_group, sink_topics)
    bench.add("sink", "sink (messages → rows in the store)", drained.rate, EVENTS_PER_S, drained.note)
    bench.add_rss("rss_sink_mib", "peak RSS sink", drained.child)


def _load_and_drain(bench: Bench, settings: Settings) -> None:
    """The adapter fills ``settings``' province topics, then a stream worker processes them: their figures.
    The peers run over the same topics afterwards (``bench.loaded``)."""
    opts = bench.options
    bench.say(f"adapter: publishing {opts.events:,} synthetic events (a child process)")
    child, timing = run_adapter(bench, settings, opts.events, opts.seed)
    bench.add("adapter", "adapter (generate, encode, sign, spool, send)",
              rate(timing["produced"], timing["finished"] - timing["started"]), EVENTS_PER_S,
              f"{timing['produced']:,} events")
    bench.add_rss("rss_adapter_mib", "peak RSS adapter", child)
    names = settings.topics
    drained = _drain(bench, settings, "stream_worker", "streams", names.streams_group,
                     [names.province_changes(p) for p in settings.provinces])
    bench.add("stream_worker", "stream worker (provenance, rules, dedup, routing, submission tallies)",
              drained.rate, EVENTS_PER_S, drained.note)
    bench.add("cpu_stream_worker", "stream worker, CPU per 100k events", drained.cpu, PER_100K, drained.cpu_note)
    bench.add_rss("rss_stream_worker_mib", "peak RSS stream worker", drained.child)
    bench.loaded = settings


def peers(bench: Bench) -> None:
    """faust-streaming and Quix Streams running the worker's stage over the topics the worker processed,
    each a child process with its own group and output prefix; their outputs checked against the worker's."""
    from .outputs import read_crossing, read_written, verdict

    if bench.loaded is None:
        _load_and_drain(bench, bench.phase("pipe"))
    settings = bench.loaded
    sources = [settings.topics.province_changes(p) for p in settings.provinces]
    apart = read_crossing(bench.bootstrap, sources)
    expected = read_written(bench.bootstrap, settings.topics, settings.provinces, apart)
    measured: dict[str, tuple[float, float]] = {}
    for kind, label in PEER_LABELS.items():
        if kind == "quix" and importlib.util.find_spec("quixstreams") is None:
            bench.say("peer quix: not measured: Quix Streams is not installed (pip install 'roadx[bench]')")
            continue
        out = bench.phase(f"peer{kind}").topics
        group = f"{settings.topic_prefix}peer-{kind}"
        drained = _drain(bench, settings, f"peer_{kind}", None, group, sources,
                         start=lambda: bench.spawn(f"peer_{kind}", "deploy.bench.peer_child", settings, kind,
                                                   "--group", group, "--out-prefix", out.prefix))
        same = verdict(expected, read_written(bench.bootstrap, out, settings.provinces, apart))
        bench.add(f"peer_{kind}", label, drained.rate, EVENTS_PER_S, f"{drained.note}; {same}")
        bench.add(f"cpu_peer_{kind}", f"{kind} peer, CPU per 100k events", drained.cpu, PER_100K, drained.cpu_note)
        bench.add_rss(f"rss_peer_{kind}_mib", f"peak RSS {kind} peer", drained.child)
        measured[kind] = (drained.rate, drained.cpu)
    worker = (bench.figures["stream_worker"].value, bench.figures["cpu_stream_worker"].value)
    faster, leaner = against_peers(worker, measured)
    bench.add("worker_vs_peers", "stream worker ÷ the fastest peer, events/s", faster, "×")
    bench.add("worker_cpu_vs_peers", "the leanest peer's CPU per event ÷ the stream worker's", leaner, "×")
    bench.say("the stage alone: the worker's pure stage over the same topics in this process")
    alone, cpu, count = stage_alone(settings, bench.bootstrap)
    note = (f"{count:,} events in batches of {settings.stream_batch_size:,}, state in a dict, one thread, "
            "the garbage collector off")
    bench.add("stage_alone", "the stage alone (decode to outputs; the worker and its peers run it)", alone,
              EVENTS_PER_S, note)
    bench.add("cpu_stage", "the stage alone, CPU per 100k events", cpu, PER_100K, note)
    bench.add("stage_cpu_vs_peers", "the leanest peer's CPU per event ÷ the stage's alone",
              against_peers((alone, cpu), measured)[1], "×",
              "the worker's ratio were it to spend nothing beyond the stage")


PEER_LABELS = {
    "faust": "faust-streaming app (the stage on take_events batches, RocksDB tables and changelogs)",
    "quix": "Quix Streams app (the stage per message, RocksDB state and changelogs, at-least-once)",
}


def _without_manifests(bench: Bench, with_manifests: float) -> None:
    """The same events again, sent alone (no submissions, no manifests), through a fresh stream worker:
    what closing every submission with a manifest costs the worker."""
    opts = bench.options
    settings = bench.phase("plain")
    bench.say(f"stream worker without manifests: publishing {opts.events:,} events that name no submission")
    run_adapter(bench, settings, opts.events, opts.seed, manifests=False)
    source_topics = [settings.topics.province_changes(p) for p in settings.provinces]
    drained = _drain(bench, settings, "stream_worker_plain", "streams", settings.topics.streams_group, source_topics)
    bench.add("stream_worker_plain", "stream worker, events without submissions", drained.rate, EVENTS_PER_S,
              drained.note)
    bench.add("manifest_ratio", "stream worker with manifests ÷ without", with_manifests / drained.rate, "×")


def seal_rates(bench: Bench, settings: Settings) -> None:
    """SM2 seals of licences: how many a party signs, and the hub (or an officer's scanner) verifies, a second."""
    from schemas import seals

    key = settings.party_key("44")
    licence = {"licence_no": "粤交运管许可穗字440100000001号", "licence_type": "operating_permit",
               "holder_key": "operator:91440101MA5CXXXX0X", "issuer_region_code": "440100",
               "valid_from": dt.date(2024, 1, 1), "valid_until": dt.date(2030, 1, 1), "status": "valid"}
    now = dt.datetime.now(dt.timezone.utc)
    count = SEAL_SAMPLE
    started = time.perf_counter()
    sealed = [seals.seal_licence(licence, key, now) for _ in range(count)]
    signing = rate(count, time.perf_counter() - started)
    hub = settings.hub_keys()
    started = time.perf_counter()
    verdicts = [seals.check_seal(record, hub.public_key).seal for record in sealed]
    verifying = rate(count, time.perf_counter() - started)
    if set(verdicts) != {seals.VALID}:
        raise StackError(f"seal check: {sorted(set(verdicts))} where every seal is valid")
    bench.add("seal_sign", "licence seals signed (SM2, one core)", signing, "seals/s", f"{count:,} licences")
    bench.add("seal_verify", "licence seals verified (SM2, one core)", verifying, "seals/s", f"{count:,} licences")


@dataclass(frozen=True)
class Drained:
    rate: float
    note: str
    cpu: float  # CPU seconds per 100k events, over the same span as the rate
    cpu_note: str
    child: Child


def _drain(bench: Bench, settings: Settings, name: str, part: str | None, group: str, topics: list[str],
           start: Callable[[], Child] | None = None) -> Drained:
    """Run worker ``part`` (or the child ``start`` starts) over loaded ``topics`` until ``group`` committed
    them all: its rate and CPU per event from its first commit to its last (from the group's
    formation when the first commit held nearly everything)."""
    total = count_messages(bench.bootstrap, topics)
    bench.say(f"{name}: processing {total:,} loaded messages" + (f" (roadx worker {part})" if part else ""))
    group_state = GroupProgress(bench.bootstrap, group)
    commits = CommitLog(bench.bootstrap, group, topics)
    try:
        child = start() if start is not None else bench.spawn_worker(name, part, settings)
        commits.cpu = child.cpu_seconds
        formed = wait_until(group_state.stable, 180, f"the {name} group to form", child.check, every=0.05)
        cpu_formed = child.cpu_seconds()
        seen = wait_until(lambda: commits.latest >= total, TIMEOUT, f"the {name} to commit {total} messages",
                          child.check, every=0.05)
        last = commits.sample_reaching(total)
        first = commits.sample_reaching(1)
    finally:
        group_state.close()
        commits.close()
    child.stop()
    done, cpu_done = (last[0], last[2]) if last else (seen, child.cpu_seconds())
    overall = rate(total, done - formed)
    if first is not None and total - first[1] >= total // 10 and done > first[0]:
        value, cpu = rate(total - first[1], done - first[0]), cpu_per_100k(cpu_done - first[2], total - first[1])
        note = (f"{total:,} messages; first to last commit; from group formation "
                f"(incl. start-up) {overall:,.0f}/s")
    else:
        value, cpu = overall, cpu_per_100k(cpu_done - cpu_formed, total)
        note = f"{total:,} messages; from group formation (incl. start-up), one batch only"
    cpu_note = f"the process's CPU time over the span of its rate; {cpu_done - cpu_formed:.1f} s from group formation"
    return Drained(value, note, cpu, cpu_note, child)


def end_to_end(bench: Bench) -> None:
    from sinks.sink import TopicRoles

    opts = bench.options
    bench.say(f"end to end: deleted the {bench.clear_earlier_phases()} topics of the earlier phases from the broker")
    settings = bench.phase("e2e")
    names = settings.topics
    source_topics = [names.province_changes(p) for p in settings.provinces]
    sink_topics = TopicRoles.from_settings(settings).topics
    streams_state = GroupProgress(bench.bootstrap, names.streams_group)
    sink_state = GroupProgress(bench.bootstrap, names.sink_group)
    streams = CommitLog(bench.bootstrap, names.streams_group, source_topics)
    sink = CommitLog(bench.bootstrap, names.sink_group, sink_topics)
    parts: list[Child] = []

    def check() -> None:
        for part in parts:
            part.check()

    def drain(what: str) -> tuple[float, float]:
        """Wait until the worker and then the sink committed everything; when each got there."""
        total = count_messages(bench.bootstrap, source_topics)
        seen = wait_until(lambda: streams.latest >= total, TIMEOUT, f"the stream worker to finish {what}", check,
                          every=0.1)
        worker_done = streams.first_reaching(total) or seen
        stored = count_messages(bench.bootstrap, sink_topics)
        seen = wait_until(lambda: sink.latest >= stored, TIMEOUT, f"the sink to finish {what}", check, every=0.1)
        return worker_done, sink.first_reaching(stored) or seen

    try:
        bench.say("end to end: starting a stream worker and a sink")
        parts += [bench.spawn_worker("e2e_stream_worker", "streams", settings),
                  bench.spawn_worker("e2e_sink", "sink", settings)]
        wait_until(lambda: streams_state.stable() and sink_state.stable(), 180, "both groups to form", check,
                   every=0.1)
        bench.say(f"end to end: publishing {opts.events:,} events through adapter → worker → sink")
        cpu_before = [part.cpu_seconds() for part in parts] + [cpu_seconds(bench.broker_pid)]
        adapter, timing = run_adapter(bench, settings, opts.events, opts.seed + 1)
        worker_done, done = drain("the end-to-end run")
        cpu = [part.cpu_seconds() - before for part, before in zip(parts, cpu_before)]
        cpu += [cpu_seconds(bench.broker_pid) - cpu_before[-1], adapter.cpu_seconds()]
        began = timing["started"]
        bench.add("end_to_end", "end to end (adapter → worker → sink)",
                  rate(timing["produced"], done - began), EVENTS_PER_S,
                  f"{timing['produced']:,} events, adapter start → last offset committed by the sink; adapter done "
                  f"+{timing['finished'] - began:.1f}s, worker +{worker_done - began:.1f}s, sink +{done - began:.1f}s; "
                  f"CPU seconds used: adapter {cpu[3]:.1f}, worker {cpu[0]:.1f}, sink {cpu[1]:.1f}, "
                  f"broker {cpu[2]:.1f} (of {os.cpu_count() or 1} cores × {done - began:.1f}s)")

        runs: list[tuple[int, int, float]] = []  # (offered per second, sent, start ms), in the order run
        offered = latency_sweep(opts.latency_rate)
        loads = later_events(settings.provinces, opts.seed + 1, opts.events,
                             [max(1, int(per_second * opts.latency_seconds)) for per_second in offered])
        for per_second, events in zip(offered, loads):
            bench.say(f"latency: offering {per_second:,} events/s for {opts.latency_seconds:g}s")
            sent, start_ms = paced_send(settings, events, per_second, bench.say)
            drain(f"the latency run at {per_second:,}/s")
            runs.append((per_second, sent, start_ms))
    finally:
        for closing in (streams_state, sink_state, streams, sink):
            closing.close()
        for part in parts:
            part.stop()
    percentiles = {}
    for (per_second, sent, start_ms), after in zip(runs, [*(r[2] for r in runs[1:]), math.inf]):
        samples, stored = _latencies(settings, start_ms, after)
        percentiles[per_second] = (*latency_percentiles(samples), sent, len(samples), stored)
    p50, p99, sent, measured, stored = percentiles[opts.latency_rate]
    note = f"{sent:,} events at {opts.latency_rate:,}/s offered; store ingested_at − event ts_ms (set at send)"
    bench.add("latency_p50_ms", "latency p50", p50, MS, note)
    bench.add("latency_p99_ms", "latency p99", p99, MS, f"{measured:,} rows measured of {sent:,} sent; {stored:,} rows stored")
    under = [rate_ for rate_, (_p50, p99_, *_rest) in percentiles.items() if p99_ < LATENCY_BOUND_MS]
    bench.add("latency_max_rate", f"highest offered rate with p99 < {LATENCY_BOUND_MS / 1000:g} s",
              max(under, default=0), EVENTS_PER_S,
              "offered " + ", ".join(f"{r:,}/s: p99 {v[1]:,.0f} ms" for r, v in sorted(percentiles.items()))
              + ("" if under else "; none stayed under"))
    bench.add_rss("rss_e2e_stream_worker_mib", "peak RSS stream worker, end to end", parts[0],
                  "end-to-end and latency runs")
    bench.add_rss("rss_e2e_sink_mib", "peak RSS sink, end to end", parts[1], "end-to-end and latency runs")


LATENCY_BOUND_MS = 2_000.0


def latency_sweep(rate_: int) -> list[int]:
    """The offered rates of the latency runs, lowest first: a quarter, a half and all of ``rate_``."""
    return sorted({max(1, rate_ // 4), max(1, rate_ // 2), rate_})


def later_events(provinces: Sequence[str], seed: int, published: int, counts: list[int]) -> list[list[dict]]:
    """Events for runs of ``counts`` events each: the valid events the generator of ``seed`` yields after the
    ``published`` the adapter sent with it. They go on from its registers, so none is stale or takes a case
    back to an earlier stage, as the events of a generator of another seed would (its case and permit
    numbers and its sequences start again at 1): each is stored, and each has its latency measured."""
    from producers.synthetic import SyntheticProvinces

    generator = SyntheticProvinces(provinces, seed)
    for _item in generator.events(published):
        pass
    loads = []
    for count in counts:
        load: list[dict] = []
        while len(load) < count:
            load += [item.event for item in generator.events(count - len(load)) if item.kind == "valid"]
        loads.append(load)
    return loads


def _latencies(settings: Settings, start_ms: float, end_ms: float = math.inf) -> tuple[list[float], int]:
    """(latency of each stored event sent from ``start_ms`` until ``end_ms``, rows in the store)."""
    from sinks.store import open_store

    client = open_store(settings)
    try:
        db = settings.clickhouse_database
        before = "" if math.isinf(end_ms) else f" AND ts < fromUnixTimestamp64Milli(toInt64({int(end_ms)}))"
        rows = client.query(
            f"SELECT toUnixTimestamp64Milli(ingested_at) - toUnixTimestamp64Milli(ts) FROM {db}.change_log "
            f"WHERE ts >= fromUnixTimestamp64Milli(toInt64({int(start_ms)})){before}").result_rows
        stored = int(client.command(f"SELECT count() FROM {db}.change_log"))
    finally:
        client.close()
    if not rows:
        raise StackError("no latency samples: none of the paced events reached the store")
    return [float(r[0]) for r in rows], stored


def state_worker(bench: Bench) -> None:
    from producers.synthetic import publish_synthetic
    from streams.pipeline import ENTITY
    from streams.retention import SEEN
    from streams.state import StateStore

    opts = bench.options
    settings = bench.phase("state")
    path = settings.data_dir / "streams" / "state" / "w0"
    store = StateStore(path)
    started = time.monotonic()
    try:
        filled = 0
        while filled < opts.state_entities:
            upto = min(filled + STATE_FILL_BATCH, opts.state_entities)
            store.apply(_entities(filled, upto, ENTITY, SEEN), {})
            filled = upto
            if filled % 1_000_000 == 0 or filled == opts.state_entities:
                bench.say(f"state: {filled:,}/{opts.state_entities:,} entities written")
    finally:
        store.close()
    fill_seconds = time.monotonic() - started
    size_mib = sum(f.stat().st_size for f in path.rglob("*") if f.is_file()) / 1024 ** 2
    batch = max(settings.stream_batch_size * 2, 2_000)
    publish_synthetic(settings, batch, opts.seed + 3)
    drained = _drain(bench, settings, "state_stream_worker", "streams", settings.topics.streams_group,
                     [settings.topics.province_changes(p) for p in settings.provinces])
    bench.add_rss("rss_state_worker_mib", "peak RSS stream worker, big state", drained.child,
                  f"{opts.state_entities:,} entities (an entity record holding its create event's id each) written to its RocksDB store with StateStore.apply "
                  f"({fill_seconds:.0f}s, {size_mib:,.0f} MiB on disk), then the worker process opened it "
                  f"and processed {batch:,} events ({drained.rate:,.0f}/s)")


def _entities(first: int, last: int, entity_prefix: str, seen_field: str) -> dict[str, object]:
    """State of entities ``first``..``last``-1 as the stream stage keeps it: the entity with its last event id."""
    return {f"{entity_prefix}vehicle:粤B{i:08d}:2": {"seq": 1, "hash": f"{i:032x}", "deleted": False,
                                                     seen_field: {f"00000000-0000-4000-8000-{i:012x}": 1_717_200_000_000}}
            for i in range(first, last)}


PHASES = (ceilings, pipeline, peers, end_to_end, state_worker, service)


def chosen_phases(phases: tuple[Callable[[Bench], None], ...], names: str | None) -> list[Callable[[Bench], None]]:
    """The phases named in ``names`` (comma-separated), in the order of ``phases``; all for None."""
    if names is None:
        return list(phases)
    wanted = {name.strip() for name in names.split(",") if name.strip()}
    known = [phase.__name__ for phase in phases]
    unknown = sorted(wanted - set(known))
    if unknown or not wanted:
        raise StackError(f"--phases: {', '.join(unknown) or 'nothing'} is not a phase of the bench; "
                         f"the phases are {', '.join(known)}")
    return [phase for phase in phases if phase.__name__ in wanted]
