"""The information service's HTTP JSON API, as faust web views (faust's aiohttp server).

Every route but ``/v1/openapi.json`` and ``/v1/health`` needs a party's credential as a
Bearer token (``roadx keys issue``): none, unknown or revoked → 401; over the party's rate
(``ROADX_SERVICE_RATE_PER_SECOND``, a leaky bucket per credential) → 429. Refusals are JSON
``{"status", "rule", "error"}``; nothing a caller sends is answered 500. Every answered
request is handed to the audit (``Audit``) with its party, route, what was asked (ID
numbers tokenised), status, outcome and latency.

Downloads and the catalog's counts come from the analytical store, which this package does
not reach: the process that builds the app hands in a ``StoreAccess``.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, Awaitable, Callable, Iterable, Iterator, Mapping, Protocol

import orjson
from aiohttp import web as aioweb
from aiolimiter import AsyncLimiter
from faust.web import View
from prometheus_client import Counter, Histogram

from schemas.catalog import catalog_entries
from schemas.credentials import Credential, Credentials
from schemas.parties import Party
from schemas.pii import PiiMasker

from ..errors import BadQuestion
from .answers import Answers
from .assists import KafkaAssists, assist_ask, assist_request, home_of
from .openapi import openapi_document
from .openapi import WATER_ROUTES
from .questions import (MAX_IDENTIFIER, REGISTER, is_token, lookup_questions, question, register_question,
                        scanned_question)

log = logging.getLogger("streams.service")

REQUESTS = Counter("roadx_service_requests", "Requests the information service answered, by route and status",
                   ["endpoint", "status"])
LATENCY = Histogram("roadx_service_request_seconds", "Time to answer a request, by route", ["endpoint"],
                    buckets=(0.001, 0.0025, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 10))

JSON = "application/json; charset=utf-8"


class StoreDownload(Protocol):
    content_type: str
    filename: str
    chunks: Iterator[bytes]


class StoreAccess(Protocol):
    """What the service asks of the analytical store (``sinks.downloads``, handed in)."""

    def download(self, params: Mapping[str, str]) -> StoreDownload: ...
    def counts(self) -> Mapping[str, Mapping[str, tuple[int, Any]]]: ...
    def refusal(self, exc: Exception) -> BadQuestion | None: ...


class Audit(Protocol):
    def record(self, *, party: str, credential_id: str, method: str, endpoint: str, asked: list[str],
               status: int, outcome: str, records: int, latency_ms: float) -> None: ...


@dataclass
class Served:
    """What a route answered: the body, how many records, and the outcome the audit records."""

    body: Any
    records: int = 1
    outcome: str = "found"
    status: int = 200


class Service:
    """The routes' shared parts: who is asking, how fast, what they asked, and the answers."""

    def __init__(self, answers: Answers, credentials: Credentials, masker: PiiMasker, parties: Mapping[str, Party],
                 rate_per_second: float, store: StoreAccess | None, audit: Audit | None,
                 uscc_allow: Iterable[str] = (), ready: Callable[[], bool] = lambda: True,
                 assists: KafkaAssists | None = None) -> None:
        self.answers = answers
        self.credentials = credentials
        self.masker = masker
        self.parties = dict(parties)  # the parties taking part, by code
        self.rate = rate_per_second
        self.store = store
        self.audit = audit
        self.uscc_allow = frozenset(uscc_allow)
        self.ready = ready
        self.assists = assists
        self._limits: dict[str, AsyncLimiter] = {}
        self._store_thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix="store")

    async def in_store(self, fn: Callable[..., Any], *args: Any) -> Any:
        """Run ``fn`` on the one thread that talks to the store (its client is not shared)."""
        return await asyncio.get_running_loop().run_in_executor(self._store_thread, fn, *args)

    async def from_store(self, fn: Callable[..., Any], *args: Any) -> Any:
        """``in_store``, with the store's errors answered as the store access says (400, 503)."""
        try:
            return await self.in_store(fn, *args)
        except Exception as exc:
            refused = self.store.refusal(exc) if self.store is not None else None
            if refused is None:
                raise
            raise refused from exc

    def close(self) -> None:
        self._store_thread.shutdown(wait=False, cancel_futures=True)

    async def serve(self, request: aioweb.Request, endpoint: str, asked: list[str],
                    work: Callable[[Credential], Awaitable[Served]]) -> aioweb.StreamResponse:
        """Authenticate, limit, run ``work`` and answer in JSON; record the request."""
        started = time.perf_counter()
        credential: Credential | None = None
        try:
            credential = self._authenticate(request)
            await self._limit(credential)
            served = await work(credential)
            response = served.body if isinstance(served.body, aioweb.StreamResponse) else _json(served.status,
                                                                                                 served.body)
            status, outcome, records = response.status, served.outcome, served.records
        except BadQuestion as exc:
            response = refusal(exc)
            status, records = exc.status, 0
            outcome = {401: "denied", 404: "unknown", 429: "limited", 503: "error"}.get(exc.status, "invalid")
        except Exception:  # the service's own fault, never the caller's: logged, answered in JSON
            log.exception("%s %s failed", request.method, endpoint)
            response = refusal(BadQuestion(500, "internal_error", "the service failed to answer; it is logged"))
            status, outcome, records = 500, "error", 0
        seconds = time.perf_counter() - started
        REQUESTS.labels(endpoint, str(status)).inc()
        LATENCY.labels(endpoint).observe(seconds)
        if self.audit is not None:  # a caller that could not be identified is recorded with no party
            self.audit.record(party=credential.party if credential else "",
                              credential_id=credential.id if credential else "", method=request.method,
                              endpoint=endpoint, asked=asked, status=status, outcome=outcome, records=records,
                              latency_ms=seconds * 1000)
        return response

    def asked(self, kind: str, raw: Any) -> str:
        """One identifier a request asked about, as the audit keeps it: ID numbers tokenised."""
        text = str(raw)[:MAX_IDENTIFIER]
        if kind == "practitioner" and not is_token(text):
            return f"tok_{self.masker.token(text)}"
        if kind == REGISTER:  # a register's key may hold an ID or mobile number: tokenised as in entity keys
            return self.masker.entity_key(text)
        return text

    def _authenticate(self, request: aioweb.Request) -> Credential:
        header = request.headers.get("Authorization", "")
        scheme, _, token = header.partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise BadQuestion(401, "no_credential", "send the party's credential as 'Authorization: Bearer <token>'")
        self.credentials.reload_if_changed()
        credential = self.credentials.authenticate(token.strip())
        if credential is None:
            raise BadQuestion(401, "bad_credential", "the credential is unknown or revoked")
        return credential

    async def _limit(self, credential: Credential) -> None:
        limiter = self._limits.get(credential.id)
        if limiter is None:
            limiter = self._limits[credential.id] = AsyncLimiter(self.rate, 1.0)
        if not limiter.has_capacity():
            raise BadQuestion(429, "rate_limited", f"party {credential.party}: more than {self.rate:g} requests a second")
        await limiter.acquire()


def refusal(exc: BadQuestion) -> aioweb.Response:
    return _json(exc.status, {"status": exc.status, "rule": exc.rule, "error": exc.message})


def _json_body(raw: bytes) -> Any:
    """A request's body as JSON; ``BadQuestion`` 400 ``malformed_body`` when it is not."""
    try:
        return orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise BadQuestion(400, "malformed_body", f"the body is not JSON: {exc}") from None


def _json(status: int, body: Any) -> aioweb.Response:
    return aioweb.Response(status=status, body=orjson.dumps(body, option=orjson.OPT_NON_STR_KEYS), content_type="application/json",
                           charset="utf-8")


def add_routes(app: Any, service: Service) -> None:
    """Register the API's views on faust ``app``."""

    @app.page("/v1/health")
    async def health(self: Any, request: aioweb.Request) -> aioweb.Response:
        ready = service.ready()
        return _json(200 if ready else 503, {"ready": ready})

    @app.page("/v1/openapi.json")
    async def openapi(self: Any, request: aioweb.Request) -> aioweb.Response:
        return _json(200, openapi_document())

    @app.page("/v1/catalog")
    async def catalog(self: Any, request: aioweb.Request) -> aioweb.StreamResponse:
        async def work(_c: Credential) -> Served:
            entries = catalog_entries(service.parties)
            counts = await service.from_store(service.store.counts) if service.store is not None else {}
            for entry in entries:
                per_party = counts.get(entry["entity_type"], {})
                entry["parties"] = {party: {"records": n, "last_change": last.isoformat() if last else None}
                                    for party, (n, last) in sorted(per_party.items())}
            return Served(entries, records=len(entries))
        return await service.serve(request, "/v1/catalog", [], work)

    def entity_view(kind: str, path: str, param: str) -> None:
        async def get(self: Any, request: aioweb.Request, **match: str) -> aioweb.StreamResponse:
            raw = match[param]
            color = request.query.get("color") if kind == "vehicle" else None

            async def work(c: Credential) -> Served:
                q = question(kind, raw, color, service.uscc_allow)
                return Served(service.answers.entity(q, c.party))
            return await service.serve(request, path, [service.asked(kind, raw)], work)
        get.__name__ = f"{kind}_view"
        app.page(path)(get)

    class ScannedVerification(View):
        """A scanned licence QR payload: ``POST {"qr": "RDXL1:…"}``, or ``GET ?qr=RDXL1:…``. Registered
        before the entity views: ``/v1/licences/verification`` is not a licence numbered "verification"."""

        async def post(self, request: aioweb.Request, **_match: str) -> aioweb.StreamResponse:
            raw = await request.read()

            async def qr() -> Any:
                body = _json_body(raw)
                if not isinstance(body, Mapping) or not isinstance(body.get("qr"), str):
                    raise BadQuestion(400, "malformed_body", 'the body is {"qr": "<the payload scanned from a licence>"}')
                return body["qr"]
            return await self._answer(request, qr)

        async def get(self, request: aioweb.Request, **_match: str) -> aioweb.StreamResponse:
            payload = request.query.getall("qr", [])

            async def qr() -> Any:
                if len(payload) != 1:
                    raise BadQuestion(400, "malformed_qr", "give the scanned payload once, as ?qr=RDXL1:…")
                return payload[0]
            return await self._answer(request, qr)

        async def _answer(self, request: aioweb.Request, qr: Callable[[], Awaitable[Any]]) -> aioweb.StreamResponse:
            asked: list[str] = []

            async def work(c: Credential) -> Served:
                scanned = scanned_question(await qr())
                asked.append(service.asked("verification", scanned.licence_no))
                return Served(service.answers.scanned(scanned, c.party))
            return await service.serve(request, "/v1/licences/verification", asked, work)

    app.page("/v1/licences/verification")(ScannedVerification)

    for kind, path, param in (("operator", "/v1/operators/{uscc}", "uscc"),
                              ("vehicle", "/v1/vehicles/{plate}", "plate"),
                              ("practitioner", "/v1/practitioners/{id_number}", "id_number"),
                              ("licence", "/v1/licences/{licence_no}", "licence_no"),
                              ("verification", "/v1/licences/{licence_no}/verification", "licence_no"),
                              *WATER_ROUTES):
        entity_view(kind, path, param)

    @app.page("/v1/registers/{register}/{key}")
    async def register_view(self: Any, request: aioweb.Request, register: str, key: str) -> aioweb.StreamResponse:
        async def work(c: Credential) -> Served:
            return Served(service.answers.entity(register_question(register, key), c.party))
        return await service.serve(request, "/v1/registers/{register}/{key}", [service.asked(REGISTER, f"{register}:{key}")], work)

    class Lookups(View):
        async def post(self, request: aioweb.Request, **_match: str) -> aioweb.StreamResponse:
            raw = await request.read()
            asked: list[str] = []

            async def work(c: Credential) -> Served:
                body = _json_body(raw)
                questions = lookup_questions(body, service.uscc_allow)
                asked.extend(service.asked(str(i.get("kind")), i.get("id")) for i in body["lookups"]
                             if isinstance(i, Mapping))
                answers = service.answers.lookups(questions, c.party)
                found = sum(1 for a in answers if a["status"] == 200)
                return Served({"answers": answers}, records=found, outcome="found" if found else "unknown")
            return await service.serve(request, "/v1/lookups", asked, work)

    app.page("/v1/lookups")(Lookups)

    class Assists(View):
        async def post(self, request: aioweb.Request, **_match: str) -> aioweb.StreamResponse:
            raw = await request.read()
            asked: list[str] = []

            async def work(c: Credential) -> Served:
                ask = assist_ask(_json_body(raw), service.uscc_allow, service.parties, c.party)
                q = ask.question
                asked.append(service.asked(q.kind, q.value))
                entry = service.answers.registered(q)
                if entry is not None and not ask.ask_province and ask.to_party is None:
                    return Served({"status": "answered", "source": "national_register",
                                   "answer": service.answers.entity(q, c.party)})
                home = home_of(q, entry)
                if ask.to_party is not None:
                    home = (ask.to_party, home[1] if home is not None else "")
                elif home is None or home[0] not in service.parties:
                    raise BadQuestion(404, "no_province_to_ask",
                                      f"no {q.kind} {service.answers.shown(q)} in the national register, and its "
                                      "identifier names no party of the exchange to ask (name one: to_party)")
                elif home[0] == c.party:
                    raise BadQuestion(400, "own_entity", f"the {q.kind} is registered in {c.party}'s own register")
                if service.assists is None:
                    raise BadQuestion(503, "not_routed", "this service routes no assist requests")
                routed = assist_request(ask, c.party, service.parties[home[0]], home[1], entry,
                                        dt.datetime.now(dt.timezone.utc))
                await asyncio.to_thread(service.assists.route, routed)
                return Served({"status": "in_progress", "assist_id": routed["assist_id"], "to_province": home[0],
                               "region": routed["region"], "in_register": entry is not None},
                              records=0, outcome="routed", status=202)
            return await service.serve(request, "/v1/assists", asked, work)

    app.page("/v1/assists")(Assists)

    @app.page("/v1/downloads")
    async def downloads(self: Any, request: aioweb.Request) -> aioweb.StreamResponse:
        params = {k: request.query.getall(k) for k in request.query}

        async def work(_c: Credential) -> Served:
            repeated = sorted(k for k, v in params.items() if len(v) > 1)
            if repeated:
                raise BadQuestion(400, "repeated_parameter", f"{repeated[0]}: given more than once")
            if service.store is None:
                raise BadQuestion(404, "no_store", "this service has no analytical store to download from")
            download = await service.from_store(service.store.download, {k: v[0] for k, v in params.items()})
            first = await service.from_store(next, download.chunks, b"")
            response = aioweb.StreamResponse(headers={
                "Content-Type": download.content_type,
                "Content-Disposition": f'attachment; filename="{download.filename}"'})
            await response.prepare(request)
            sent = len(first)
            await response.write(first)
            while True:
                chunk = await service.in_store(next, download.chunks, b"")
                if not chunk:
                    break
                sent += len(chunk)
                await response.write(chunk)
            await response.write_eof()
            return Served(response, records=sent)
        return await service.serve(request, "/v1/downloads", [f"{k}={v[0][:64]}" for k, v in params.items()], work)

