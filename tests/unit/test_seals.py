"""Sealed licences: canonical content, seal verdicts, and the QR payload an officer scans."""

from __future__ import annotations

import datetime as dt
import io
import uuid

import pytest
from fastavro import parse_schema, schemaless_reader, schemaless_writer
from hypothesis import given, settings, strategies as st

from schemas import contract, seals
from schemas.errors import ProvenanceError
from schemas.keys import HubKeys, PartyKeys

NOW = dt.datetime(2024, 6, 1, 8, 0, tzinfo=dt.timezone.utc)
LICENCE = {
    "licence_no": "粤交运管许可广字440106000123号", "licence_type": "operating_permit",
    "holder_key": "operator:91440101MA5CXXXX1X", "issuer_region_code": "440106",
    "valid_from": dt.date(2022, 3, 1), "valid_until": dt.date(2026, 3, 2), "status": "valid", "seal": None,
}


@pytest.fixture(scope="module")
def keys(tmp_path_factory):
    """Guangdong's and Beijing's own keys, registered at a hub; a third Guangdong key never registered."""
    root = tmp_path_factory.mktemp("keys")
    hub = HubKeys(root / "hub")
    gd, bj = PartyKeys(root / "44", "44"), PartyKeys(root / "11", "11")
    gd_key, bj_key = gd.init(NOW - dt.timedelta(days=1)), bj.init(NOW - dt.timedelta(days=1))
    for key in (gd_key, bj_key):
        hub.register(key.registration(), NOW, ["44", "11"])
    stray = PartyKeys(root / "44-stray", "44").init(NOW - dt.timedelta(days=1))
    return hub, gd_key, bj_key, stray


def test_a_sealed_licence_checks_valid_and_names_its_key(keys):
    hub, gd_key, _bj, _stray = keys
    sealed = seals.seal_licence(LICENCE, gd_key, NOW)
    check = seals.check_seal(sealed, hub.public_key)
    assert check == seals.SealCheck("valid", gd_key.key_id, "2024-06-01T08:00:00.000Z", None)
    assert LICENCE["seal"] is None  # sealing made a copy


def test_canonical_content_survives_an_avro_round_trip(keys):
    hub, gd_key, _bj, _stray = keys
    sealed = seals.seal_licence(LICENCE, gd_key, NOW + dt.timedelta(microseconds=123_456))
    envelope = contract.change_event(event_id=str(uuid.uuid4()), op="c", entity_type="licence", before=None,
                                     after=sealed, province="44", system="s", table="licences", seq=1,
                                     ts_ms=1_717_200_000_000)
    schema = parse_schema(contract.envelope_schema())
    buffer = io.BytesIO()
    schemaless_writer(buffer, schema, {**envelope, "signature": b""})
    buffer.seek(0)
    decoded = schemaless_reader(buffer, schema)["after"]
    assert seals.canonical_content(decoded) == seals.canonical_content(sealed)
    assert seals.check_seal(decoded, hub.public_key).seal == "valid"
    # and as JSON keeps it (the store, the service's register): ISO dates, base64 signature
    as_json = {**decoded, "valid_from": "2022-03-01", "valid_until": "2026-03-02",
               "seal": seals.seal_as_json(decoded["seal"])}
    assert seals.check_seal(as_json, hub.public_key).seal == "valid"
    # and with dates as days since 1970, as the adapters build records before encoding
    as_days = {**sealed, "valid_from": (dt.date(2022, 3, 1) - dt.date(1970, 1, 1)).days,
               "valid_until": (dt.date(2026, 3, 2) - dt.date(1970, 1, 1)).days}
    assert seals.canonical_content(as_days) == seals.canonical_content(sealed)


def test_canonical_content_is_the_documented_text():
    assert seals.canonical_content(LICENCE).decode("utf-8") == (
        '[["licence_no","粤交运管许可广字440106000123号"],["licence_type","operating_permit"],'
        '["holder_key","operator:91440101MA5CXXXX1X"],["issuer_region_code","440106"],'
        '["valid_from","2022-03-01"],["valid_until","2026-03-02"],["status","valid"]]')


@pytest.mark.parametrize("field, value", [
    ("holder_key", "operator:91440101MA5CYYYY2Y"),
    ("valid_until", dt.date(2030, 3, 2)),
    ("valid_from", dt.date(2021, 3, 1)),
    ("status", "revoked"),
    ("licence_no", "粤交运管许可广字440106000124号"),
    ("issuer_region_code", "440103"),
    ("licence_type", "transport_cert"),
])
def test_a_field_edited_after_sealing_makes_the_seal_invalid(keys, field, value):
    hub, gd_key, _bj, _stray = keys
    tampered = {**seals.seal_licence(LICENCE, gd_key, NOW), field: value}
    check = seals.check_seal(tampered, hub.public_key)
    assert check.seal == "invalid" and "changed after sealing" in check.reason
    assert check.key_id == gd_key.key_id


def test_a_changed_sealing_time_or_signature_is_invalid(keys):
    hub, gd_key, _bj, _stray = keys
    sealed = seals.seal_licence(LICENCE, gd_key, NOW)
    moved = {**sealed, "seal": {**sealed["seal"], "sealed_at": NOW + dt.timedelta(seconds=1)}}
    assert seals.check_seal(moved, hub.public_key).seal == "invalid"
    garbled = {**sealed, "seal": {**sealed["seal"], "signature": b"\x30\x02\x01\x01"}}
    assert seals.check_seal(garbled, hub.public_key).seal == "invalid"
    broken = {**sealed, "seal": {"key_id": "nonsense", "signature": b"x", "sealed_at": NOW}}
    assert seals.check_seal(broken, hub.public_key).reason.startswith("malformed seal")


def test_keys_the_hub_does_not_accept_for_the_issuer_are_unknown_keys(keys, tmp_path):
    hub, gd_key, bj_key, stray = keys
    check = seals.check_seal(seals.seal_licence(LICENCE, stray, NOW), hub.public_key)
    assert check.seal == "unknown_key" and "unknown_key" in check.reason
    beijing = {**LICENCE, "issuer_region_code": "110105"}
    other = {**seals.seal_licence(beijing, bj_key, NOW), "issuer_region_code": "440106"}
    assert seals.check_seal(other, hub.public_key).seal == "unknown_key"
    with pytest.raises(ProvenanceError) as refused:
        seals.seal_licence(LICENCE, bj_key, NOW)
    assert refused.value.rule == "other_party_key"


def test_a_key_revoked_before_sealing_is_unknown_one_revoked_after_still_seals(keys, tmp_path):
    _hub, gd_key, _bj, _stray = keys
    hub = HubKeys(tmp_path / "hub")
    hub.register(gd_key.registration(), NOW, ["44"])
    before = seals.seal_licence(LICENCE, gd_key, NOW)
    hub.revoke(gd_key.key_id, NOW + dt.timedelta(hours=1))
    after = seals.seal_licence(LICENCE, gd_key, NOW + dt.timedelta(hours=2))
    assert seals.check_seal(before, hub.public_key).seal == "valid"
    revoked = seals.check_seal(after, hub.public_key)
    assert revoked.seal == "unknown_key" and "revoked_key" in revoked.reason


def test_an_unsealed_licence_is_a_warning_not_an_error():
    check = seals.check_seal(LICENCE, lambda *_: pytest.fail("no key is needed"))
    assert check.seal == "unsealed" and check.key_id is None
    older = {k: v for k, v in LICENCE.items() if k != "seal"}  # written before the seal existed
    assert seals.check_seal(older, lambda *_: None).seal == "unsealed"


def test_a_masked_licence_keeps_its_seal_but_not_a_signature_that_would_unmask_it(keys):
    _hub, gd_key, _bj, _stray = keys
    sealed = seals.seal_licence(LICENCE, gd_key, NOW)
    assert seals.masked_seal(sealed, dict(sealed))["seal"]["signature"] == sealed["seal"]["signature"]
    masked = seals.masked_seal(sealed, {**sealed, "holder_key": "practitioner:tok_00"})
    assert masked["seal"] == {"key_id": gd_key.key_id, "sealed_at": NOW}


def test_the_qr_payload_round_trips_and_checks_against_the_register(keys):
    hub, gd_key, _bj, _stray = keys
    sealed = seals.seal_licence(LICENCE, gd_key, NOW + dt.timedelta(milliseconds=7))
    payload = seals.qr_payload(sealed)
    prefix, number, key_id, millis, signature = payload.split(":")
    assert (prefix, number, key_id, millis) == ("RDXL1", LICENCE["licence_no"], gd_key.key_id, "1717228800007")
    assert "=" not in signature and "+" not in signature and "/" not in signature
    scanned = seals.parse_qr(f"  {payload}\n")
    assert scanned.licence_no == LICENCE["licence_no"]
    assert scanned.seal == seals.read_seal(sealed["seal"])
    assert seals.check_seal(LICENCE, hub.public_key, scanned.seal).seal == "valid"
    renewed = {**LICENCE, "valid_until": dt.date(2030, 3, 2)}
    assert seals.check_seal(renewed, hub.public_key, scanned.seal).seal == "invalid"
    with pytest.raises(ValueError):
        seals.qr_payload(LICENCE)


@pytest.mark.parametrize("payload, says", [
    ("", "does not start with RDXL1"),
    ("RDXL2:A1234:44-0123abcd:1:MEUCIQ", "does not start with RDXL1"),
    ("RDXL1:A1234:44-0123abcd:1717228800000", "4 parts"),
    ("RDXL1:A1234:44-0123abcd:1717228800000:MEUCIQDx:extra", "6 parts"),
    ("RDXL1:A 1234:44-0123abcd:1717228800000:MEUCIQDxMEUCIQDx", "licence number"),
    ("RDXL1:A1234:440123abcd:1717228800000:MEUCIQDxMEUCIQDx", "key id"),
    ("RDXL1:A1234:44-0123abcd:-5:MEUCIQDxMEUCIQDx", "sealed_at"),
    ("RDXL1:A1234:44-0123abcd:1717228800000:MEUCIQDx+/==", "base64url"),
    ("RDXL1:A1234:44-0123abcd:1717228800000:QUJDREVGR0hJSktM", "DER"),
    ("RDXL1:A1234:44-0123abcd:999999999999999:MEUCIQDxMEUCIQDx", "out of range"),
    ("RDXL1:" + "A" * 500, "characters"),
])
def test_malformed_qr_payloads_are_refused_with_the_reason(payload, says):
    with pytest.raises(ProvenanceError) as refused:
        seals.parse_qr(payload)
    assert refused.value.rule == "malformed_qr" and says in str(refused.value)


def test_a_qr_payload_that_is_no_text_is_refused():
    with pytest.raises(ProvenanceError, match="malformed_qr"):
        seals.parse_qr(None)


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=200))
def test_any_text_parses_or_is_refused_as_malformed_qr(text):
    try:
        scanned = seals.parse_qr(text)
    except ProvenanceError as exc:
        assert exc.rule == "malformed_qr"
    else:
        assert scanned.licence_no and scanned.seal.signature[:1] == b"\x30"


@settings(max_examples=100, deadline=None)
@given(number=st.from_regex(r"[0-9A-Z\u4e00-\u9fa5（）-]{4,40}", fullmatch=True),
       millis=st.integers(0, 4_102_444_800_000), signature=st.binary(min_size=8, max_size=72))
def test_every_well_formed_seal_round_trips_through_its_payload(number, millis, signature):
    seal = {"key_id": "44-0123abcd", "signature": b"\x30" + signature, "sealed_at": millis}
    scanned = seals.parse_qr(seals.qr_payload({"licence_no": number, "seal": seal}))
    assert scanned.licence_no == number
    assert scanned.seal == seals.read_seal(seal)
