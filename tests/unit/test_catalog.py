"""The data-resource catalog: every register and field of the contract, labelled, with what
the hub checks; and the file adapter still reads every column label it read before."""

from __future__ import annotations

import re

import orjson
import pytest

from producers.errors import FileRejected
from producers.files.headers import DEFAULT_LABELS, entity_from_name, map_header
from schemas import catalog, contract, pii
from schemas.parties import default_parties
from streams.rules import RULES

PARTIES = {code: default_parties()[code] for code in ("11", "44", "65")}
ROAD = ("operator", "vehicle", "practitioner", "licence", "case")
WATER = ("ship", "shipping_enterprise", "port_enterprise", "waterway_project")
CJK = re.compile(r"[\u4e00-\u9fff]")
# The rules that check a field's values against a standard, by their code.
STANDARD_RULES = ("invalid_uscc", "invalid_id_number", "invalid_plate", "invalid_plate_color", "invalid_region_code",
                  "invalid_imo", "invalid_mmsi")


def test_the_registers_are_the_contract_entity_types_in_order_with_their_names_and_key_fields():
    entries = catalog.catalog_entries(PARTIES)[:len(ROAD)]
    assert [entry["entity_type"] for entry in entries] == list(contract.ENTITY_TYPES[:len(ROAD)]) == list(ROAD)
    assert [entry["name_zh"] for entry in entries] == ["经营业户", "营运车辆", "从业人员", "电子证照", "执法案件"]
    for entry in entries:
        assert entry["key_fields"] == list(contract.KEY_FIELDS[entry["entity_type"]])
        assert entry["name_en"] and not CJK.search(entry["name_en"])


def test_the_catalog_lists_all_nine_registers_the_water_ones_carried_now_the_contract_has_them():
    entries = catalog.catalog_entries(PARTIES)
    assert [entry["entity_type"] for entry in entries] == list(contract.ENTITY_TYPES) == [*ROAD, *WATER]
    assert [entry["name_zh"] for entry in entries[5:]] == ["营运船舶", "航运企业", "港口企业", "水运建设项目"]
    assert [entry["carried"] for entry in entries] == [True] * 9
    for entry in entries[5:]:
        assert entry["publishers"] == list(PARTIES), "a province publishes the water registers too"
        assert entry["name_en"] and not CJK.search(entry["name_en"])
        assert entry["fields"] and all(CJK.search(f["label_zh"]) or f["name"] == "mmsi" for f in entry["fields"])
    ship = {f["name"]: f for f in entries[5]["fields"]}
    assert list(ship)[:4] == ["ship_id", "name", "imo", "mmsi"]
    assert ship["operator_uscc"]["standard"] == "GB 32100-2015" and ship["imo"]["required"] is False


@pytest.mark.parametrize("entity", contract.ENTITY_TYPES)
def test_every_field_of_the_avro_record_appears_in_schema_order_with_its_kind_and_required(entity):
    fields = catalog.catalog_fields(entity)
    specs = contract.field_specs(entity)
    assert [(f.name, f.kind, f.required) for f in fields] == [(s.name, s.kind, s.required) for s in specs]


@pytest.mark.parametrize("entity", contract.ENTITY_TYPES)
def test_every_field_has_one_chinese_label_and_no_label_names_two_fields(entity):
    assert list(catalog.LABELS_ZH[entity]) == contract.entity_fields(entity)
    labels = [field.label_zh for field in catalog.catalog_fields(entity)]
    assert all(CJK.search(label) for label in labels if label != "MMSI"), labels
    assert len(set(labels)) == len(labels)


def test_key_fields_are_fields_of_their_register_and_required():
    for entity in contract.ENTITY_TYPES:
        required = {f.name for f in catalog.catalog_fields(entity) if f.required}
        assert set(contract.KEY_FIELDS[entity]) <= required, entity


def test_personal_fields_are_the_ones_the_store_masks():
    flagged = {(e, f.name) for e in contract.ENTITY_TYPES for f in catalog.catalog_fields(e) if f.personal}
    assert flagged == {("operator", "legal_rep_id_number"), ("operator", "contact_phone"),
                       ("practitioner", "id_number"), ("case", "involved_id_number")}
    assert {name for _entity, name in flagged} == {*pii.ID_NUMBER_FIELDS, *pii.PHONE_FIELDS}


def test_standards_are_on_exactly_the_fields_a_rule_checks_against_that_standard():
    checked = {(r.entity, r.field): r.message for r in RULES if r.code in STANDARD_RULES}
    with_standard = {(e, f.name): f.standard for e in contract.ENTITY_TYPES for f in catalog.catalog_fields(e)
                     if f.standard is not None}
    assert set(with_standard) == set(checked)
    for key, standard in with_standard.items():
        designation = standard.split("-")[0]  # "GB 32100-2015" is checked as "GB 32100"
        assert designation in checked[key], (key, standard, checked[key])


def test_the_standards_named_are_the_ones_the_project_checks():
    road = {name: standard for name, standard in catalog.FIELD_STANDARDS.items()
            if any(name in contract.entity_fields(entity) for entity in ROAD)}
    assert set(road.values()) == {"GB 32100-2015", "GB 11643-1999", "GA 36-2018", "JT/T 697.7", "GB/T 2260"}
    assert set(catalog.FIELD_STANDARDS) - set(road) == {"imo", "mmsi", "owner_uscc"}
    licence = {f.name: f.standard for f in catalog.catalog_fields("licence")}
    assert licence["licence_no"] is None and licence["issuer_region_code"] == "GB/T 2260"


def test_the_catalog_is_json_and_every_province_publishes_every_register():
    entries = catalog.catalog_entries(PARTIES)
    assert orjson.loads(orjson.dumps(entries)) == entries
    assert all(entry["publishers"] == list(PARTIES) for entry in entries if entry["carried"])
    assert all(entry["publishers"] == [] for entry in catalog.catalog_entries({}))


def test_a_registers_publishers_are_the_parties_allowed_to_publish_it():
    every = default_parties()
    entries = {entry["entity_type"]: entry["publishers"] for entry in catalog.catalog_entries(every)}
    provinces = list(every.of_kind("province"))
    assert {register: entries[register] for register in ROAD} == {
        "operator": [*provinces, "66"], "vehicle": [*provinces, "66"], "practitioner": [*provinces, "66"],
        "licence": [*provinces, "66"], "case": [*provinces, "66", "CJ", "ZJ"]}
    assert all(entries[register] == [*provinces, "CJ", "ZJ"] for register in WATER)
    taking_part = {code: every[code] for code in ("44", "CJ", "66")}
    served = {entry["entity_type"]: entry["publishers"] for entry in catalog.catalog_entries(taking_part)}
    assert (served["operator"], served["ship"], served["case"]) == (["44", "66"], ["44", "CJ"], ["44", "CJ", "66"])  # in the order given


def test_a_register_as_served():
    vehicle = catalog.catalog_entries({"44": default_parties()["44"]})[1]
    assert {k: v for k, v in vehicle.items() if k != "fields"} == {
        "entity_type": "vehicle", "name_zh": "营运车辆", "name_en": "Operating vehicles",
        "key_fields": ["plate", "plate_color"], "publishers": ["44"], "carried": True}
    assert vehicle["fields"][:2] == [
        {"name": "plate", "label_zh": "车牌号码", "kind": "string", "required": True, "standard": "GA 36-2018",
         "personal": False},
        {"name": "plate_color", "label_zh": "车牌颜色", "kind": "int", "required": True, "standard": "JT/T 697.7",
         "personal": False},
    ]


# ---- the file adapter's column labels: built from the catalog, unchanged ------------------------

# The default labels as the file adapter held them before the catalog gave the preferred ones.
OLD_COMMON = {"状态": "status", "行政区划代码": "region_code"}
OLD_ID = ("身份证号", "身份证号码", "公民身份号码")
OLD_DEFAULT_LABELS: dict[str, dict[str, str]] = {
    "operator": {
        "统一社会信用代码": "uscc", "业户名称": "name", "经营业户名称": "name", "经营许可证号": "permit_no",
        "经营范围": "business_scope", "经营状态": "status", "法定代表人身份证号": "legal_rep_id_number",
        "联系电话": "contact_phone",
    },
    "vehicle": {
        "车牌号码": "plate", "号牌号码": "plate", "车牌颜色": "plate_color", "车辆识别代号": "vin",
        "车架号": "vin", "车辆类型": "vehicle_class", "车辆类别": "vehicle_class",
        "统一社会信用代码": "operator_uscc", "业户统一社会信用代码": "operator_uscc",
        "道路运输证号": "transport_cert_no", "核定座位": "seats", "核定座位数": "seats",
        "核定吨位": "tonnage_kg", "核定载质量": "tonnage_kg", "车辆状态": "status",
    },
    "practitioner": {
        **{label: "id_number" for label in OLD_ID}, "姓名": "name", "从业资格证号": "qualification_cert_no",
        "从业资格类别": "qualification_types", "统一社会信用代码": "employer_uscc",
        "所属业户统一社会信用代码": "employer_uscc",
    },
    "licence": {
        "证照编号": "licence_no", "证照类型": "licence_type", "持证主体": "holder_key",
        "发证机关行政区划代码": "issuer_region_code", "行政区划代码": "issuer_region_code",
        "有效期起": "valid_from", "有效期止": "valid_until", "证照状态": "status",
    },
    "case": {
        "案件编号": "case_no", "案件阶段": "stage", "违法行为代码": "violation_code", "违法时间": "occurred_at",
        "发生时间": "occurred_at", "涉案车牌": "involved_plate", "车牌号码": "involved_plate",
        "统一社会信用代码": "involved_operator_uscc", "涉案业户统一社会信用代码": "involved_operator_uscc",
        **{label: "involved_id_number" for label in OLD_ID}, "当事人身份证号": "involved_id_number",
        "罚款金额(分)": "penalty_cents",
    },
}
OLD_FILE_NAME_ALIASES = {
    "operator": ("operator", "operators", "经营业户", "业户"),
    "vehicle": ("vehicle", "vehicles", "营运车辆", "车辆"),
    "practitioner": ("practitioner", "practitioners", "从业人员"),
    "licence": ("licence", "licences", "license", "电子证照", "证照"),
    "case": ("case", "cases", "执法案件", "案件"),
}


def old_labels(entity: str) -> dict[str, str]:
    """The labels the old table gave ``entity``: the common ones where it has the field, its own over them."""
    fields = contract.entity_fields(entity)
    return {label: field for label, field in {**OLD_COMMON, **OLD_DEFAULT_LABELS[entity]}.items() if field in fields}


SEAL_LABELS = {"电子印章": "seal", "印章密钥标识": "seal_key_id", "签章密钥标识": "seal_key_id",
               "电子印章密钥标识": "seal_key_id", "印章签名值": "seal_signature", "签名值": "seal_signature",
               "电子印章签名值": "seal_signature", "签章时间": "sealed_at", "盖章时间": "sealed_at"}


SHIP_LABELS = {"涉案船舶识别号": "involved_ship_id", "涉案船舶识别码": "involved_ship_id"}


@pytest.mark.parametrize("entity", ROAD)
def test_the_default_labels_are_the_old_ones_exactly(entity):
    """The old labels, and a licence's seal labels and a case's ship labels besides them (they came later)."""
    added = {"licence": SEAL_LABELS, "case": SHIP_LABELS}.get(entity, {})
    assert DEFAULT_LABELS[entity] == {**old_labels(entity), **added}


def test_a_licence_export_names_its_seal_columns_in_chinese_or_by_field():
    header = ("证照编号", "印章密钥标识", "印章签名值", "签章时间", "seal_key_id")
    assert map_header("licence", header[:4], ()) == ("licence_no", "seal_key_id", "seal_signature", "sealed_at")
    assert map_header("licence", ("电子印章",), ()) == ("seal",)
    with pytest.raises(FileRejected, match="duplicate_columns|both give seal_key_id"):
        map_header("licence", header, ())


@pytest.mark.parametrize("entity", ROAD)
def test_every_old_label_still_names_the_same_column(entity):
    for label, field in old_labels(entity).items():
        assert map_header(entity, (label,), ()) == (field,), label


@pytest.mark.parametrize("entity", contract.ENTITY_TYPES)
def test_the_preferred_label_of_every_field_names_its_column(entity):
    labels = tuple(catalog.LABELS_ZH[entity].values())
    assert map_header(entity, labels, contract.required_fields(entity)) == tuple(catalog.LABELS_ZH[entity])


def test_file_names_announce_the_same_register_as_before():
    for entity, aliases in OLD_FILE_NAME_ALIASES.items():
        for alias in aliases:
            assert entity_from_name(f"{alias}_20240601.csv") == entity, alias
