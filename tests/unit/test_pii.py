"""Personal identifiers are masked and tokenised before anything reaches the store."""

from __future__ import annotations

import io
import json

import pytest
from fastavro import schemaless_reader

from schemas import contract
from schemas.codec import EventCodec
from schemas.registry import EmbeddedRegistry
from schemas.pii import PiiMasker, mask_id_number, mask_phone, mask_raw

ID = "11010519491231002X"
PHONE = "13812345678"
KEY_A = b"a" * 32
KEY_B = b"b" * 32


def test_id_number_keeps_first_six_and_last_four():
    assert mask_id_number(ID) == "110105********002X"


def test_phone_keeps_first_three_and_last_four():
    assert mask_phone(PHONE) == "138****5678"


def test_short_values_are_masked_entirely():
    assert mask_id_number("12345") == "*****"
    assert mask_phone("12345") == "*****"


def test_token_is_stable_for_the_same_value_and_key():
    assert PiiMasker(KEY_A).token(ID) == PiiMasker(KEY_A).token(ID)
    assert len(PiiMasker(KEY_A).token(ID)) == 32


def test_token_differs_between_keys_and_values():
    assert PiiMasker(KEY_A).token(ID) != PiiMasker(KEY_B).token(ID)
    assert PiiMasker(KEY_A).token(ID) != PiiMasker(KEY_A).token("110105194912310029")


def test_token_ignores_case_of_the_check_character():
    assert PiiMasker(KEY_A).token(ID.lower()) == PiiMasker(KEY_A).token(ID)


def test_short_key_is_refused():
    with pytest.raises(ValueError, match="16 bytes"):
        PiiMasker(b"short")


def test_operator_record_has_masked_fields_and_tokens():
    pii = PiiMasker(KEY_A)
    out = pii.record({"uscc": "91350100M000100Y43", "legal_rep_id_number": ID, "contact_phone": PHONE})
    assert out["legal_rep_id_number"] == "110105********002X"
    assert out["legal_rep_id_number_token"] == pii.token(ID)
    assert out["contact_phone"] == "138****5678"
    assert out["contact_phone_token"] == pii.token(PHONE)
    assert out["uscc"] == "91350100M000100Y43"
    assert ID not in json.dumps(out) and PHONE not in json.dumps(out)


def test_missing_personal_fields_get_null_tokens():
    out = PiiMasker(KEY_A).record({"legal_rep_id_number": None, "contact_phone": None})
    assert out["legal_rep_id_number_token"] is None and out["contact_phone_token"] is None


def test_practitioner_key_uses_the_token():
    pii = PiiMasker(KEY_A)
    assert pii.entity_key(f"practitioner:{ID}") == f"practitioner:tok_{pii.token(ID)}"


def test_licence_holder_key_and_number_carrying_an_id_are_scrubbed():
    pii = PiiMasker(KEY_A)
    out = pii.record({"holder_key": f"practitioner:{ID}", "licence_no": f"QC{ID}"})
    assert out["holder_key"] == f"practitioner:tok_{pii.token(ID)}"
    assert out["licence_no"] == "QC110105********002X"


def test_keys_without_personal_data_are_unchanged():
    pii = PiiMasker(KEY_A)
    for key in ("vehicle:粤B12345:2", "operator:91350100M000100Y43", "case:44-2024-000123"):
        assert pii.entity_key(key) == key


def test_masked_raw_message_keeps_its_length_and_still_decodes():
    codec = EventCodec(EmbeddedRegistry())
    event = {
        "event_id": "6f1c2c1e-0000-4000-8000-000000000001", "op": "c", "entity_type": "practitioner",
        "entity_key": f"practitioner:{ID}", "before": None,
        "after": {"id_number": ID, "name": "张三", "qualification_cert_no": f"{ID}", "qualification_types": [],
                  "region_code": "110105", "employer_uscc": None, "status": "active"},
        "source": {"province": "11", "system": "yz", "table": "t", "seq": 1, "snapshot": False},
        "ts_ms": 1_700_000_000_000,
    }
    raw = codec.encode(event)
    masked = mask_raw(raw + b" call 13812345678")
    assert len(masked) == len(raw) + len(b" call 13812345678")
    assert ID.encode() not in masked and b"13812345678" not in masked
    decoded = schemaless_reader(io.BytesIO(masked[5:len(raw)]), contract.envelope_schema())
    assert decoded["after"]["id_number"] == "110105********002X"


def test_phone_and_id_numbers_in_free_text_are_masked():
    masker = PiiMasker(b"k" * 32)
    text = masker.text("call 13812345678 or 8613912345678? holder 11010519491231002X")
    assert text == "call 138****5678 or 8613912345678? holder 110105********002X"


def test_phone_in_an_entity_key_becomes_a_token():
    masker = PiiMasker(b"k" * 32)
    assert masker.entity_key("contact:13812345678") == f"contact:tok_{masker.token('13812345678')}"


def test_phone_in_any_text_field_of_a_record_is_masked():
    masker = PiiMasker(b"k" * 32)
    assert masker.record({"name": "王五 13812345678"}) == {"name": "王五 138****5678"}
