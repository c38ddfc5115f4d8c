"""A configured Schema Registry replaces the embedded ids: registered once, looked up by id.

The registry here is a minimal stand-in speaking the two REST calls the codec uses
(register a subject version, fetch a schema by id) on a loopback port.
"""

from __future__ import annotations

import json
import threading
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from schemas import contract
from schemas.codec import EventCodec
from schemas.errors import UnknownSchemaError
from schemas.registry import ConfluentRegistry, make_registry


class RegistryStandIn(BaseHTTPRequestHandler):
    schemas: dict[int, str] = {}
    calls: list[str] = []

    def _reply(self, status: int, body: dict) -> None:
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/vnd.schemaregistry.v1+json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_POST(self) -> None:  # noqa: N802 (http.server's naming)
        self.calls.append(f"POST {self.path}")
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        for schema_id, text in self.schemas.items():
            if text == body["schema"]:
                return self._reply(200, {"id": schema_id})
        schema_id = 100 + len(self.schemas)
        self.schemas[schema_id] = body["schema"]
        self._reply(200, {"id": schema_id})

    def do_GET(self) -> None:  # noqa: N802
        self.calls.append(f"GET {self.path}")
        schema_id = int(self.path.split("?")[0].rsplit("/", 1)[1])
        if schema_id not in self.schemas:
            return self._reply(404, {"error_code": 40403, "message": "Schema not found"})
        self._reply(200, {"schema": self.schemas[schema_id], "schemaType": "AVRO"})

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def registry_url():
    RegistryStandIn.schemas, RegistryStandIn.calls = {}, []
    server = ThreadingHTTPServer(("127.0.0.1", 0), RegistryStandIn)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def event():
    after = dict(case_no="粤交执2026-000001", region_code="440305", stage="filed", violation_code="61001",
                 occurred_at=1_700_000_000_000, involved_plate="京A12345", involved_operator_uscc=None,
                 involved_id_number=None, penalty_cents=None)
    return dict(event_id=str(uuid.UUID(int=1, version=4)), op="c", entity_type="case",
                entity_key=contract.entity_key("case", after), before=None, after=after,
                source=dict(province="44", system="s", table="cases", seq=1, snapshot=False), ts_ms=1)


def test_ids_come_from_the_registry_and_another_process_resolves_them(registry_url):
    writer = EventCodec(make_registry(registry_url))
    assert isinstance(writer._registry, ConfluentRegistry) and writer.schema_id == 100
    framed = writer.encode(event())
    reader_registry = ConfluentRegistry(registry_url)
    schema_id, decoded = EventCodec(reader_registry).decode(framed)
    assert schema_id == 100 and decoded["after"]["involved_plate"] == "京A12345"
    assert any(c.startswith("POST /subjects/roadx-changes-value/versions") for c in RegistryStandIn.calls)


def test_an_id_the_registry_does_not_know_is_an_unknown_schema(registry_url):
    codec = EventCodec(make_registry(registry_url))
    with pytest.raises(UnknownSchemaError, match="schema id 4242"):
        codec.decode(b"\x00\x00\x00\x10\x92" + b"\x00" * 10)
