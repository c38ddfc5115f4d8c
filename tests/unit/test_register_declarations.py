"""The register declarations (schemas.registers): the five road registers say exactly what the
code says today, field by field; the four water registers are well-formed; the loader refuses
a declaration that is not."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from fastavro import parse_schema

from producers.files.headers import DEFAULT_LABELS
from producers.files.rows import SEAL_COLUMNS
from schemas import codes, contract, identifiers, pii, registers, water_identifiers
from schemas.errors import SchemaLoadError
from sinks.ddl import VIEWS
from streams import routing
from streams.rules import RULES

ROAD = ("operator", "vehicle", "practitioner", "licence", "case")
WATER = ("ship", "shipping_enterprise", "port_enterprise", "waterway_project")
DECLARED = {register.entity_type: register for register in registers.declarations()}
CJK = re.compile(r"[\u4e00-\u9fff]")
# What the rule table applies to every register, and what it derives from a field's kind and
# whether it is required or expected, rather than from a declared rule.
UNIVERSAL_RULES = {"field_too_long"}
COMPLETENESS_RULES = {"required_field", "expected_field"}

# What schemas.catalog said itself before it read the declarations.
OLD_LABELS_ZH = {
    "operator": {
        "uscc": "统一社会信用代码", "name": "业户名称", "region_code": "行政区划代码", "permit_no": "经营许可证号",
        "business_scope": "经营范围", "status": "经营状态", "legal_rep_id_number": "法定代表人身份证号",
        "contact_phone": "联系电话",
    },
    "vehicle": {
        "plate": "车牌号码", "plate_color": "车牌颜色", "vin": "车辆识别代号", "vehicle_class": "车辆类型",
        "operator_uscc": "业户统一社会信用代码", "transport_cert_no": "道路运输证号", "seats": "核定座位",
        "tonnage_kg": "核定吨位", "status": "车辆状态",
    },
    "practitioner": {
        "id_number": "身份证号", "name": "姓名", "qualification_cert_no": "从业资格证号",
        "qualification_types": "从业资格类别", "region_code": "行政区划代码",
        "employer_uscc": "所属业户统一社会信用代码", "status": "状态",
    },
    "licence": {
        "licence_no": "证照编号", "licence_type": "证照类型", "holder_key": "持证主体",
        "issuer_region_code": "发证机关行政区划代码", "valid_from": "有效期起", "valid_until": "有效期止",
        "status": "证照状态", "seal": "电子印章",
    },
    "case": {
        "case_no": "案件编号", "region_code": "行政区划代码", "stage": "案件阶段", "violation_code": "违法行为代码",
        "occurred_at": "违法时间", "involved_plate": "涉案车牌", "involved_operator_uscc": "涉案业户统一社会信用代码",
        "involved_id_number": "当事人身份证号", "penalty_cents": "罚款金额(分)",
        "involved_ship_id": "涉案船舶识别号",  # added with the water registers
    },
}
_USCC, _ID_NUMBER, _PLATE, _REGION = "GB 32100-2015", "GB 11643-1999", "GA 36-2018", "GB/T 2260"
OLD_FIELD_STANDARDS = {
    "uscc": _USCC, "operator_uscc": _USCC, "employer_uscc": _USCC, "involved_operator_uscc": _USCC,
    "id_number": _ID_NUMBER, "legal_rep_id_number": _ID_NUMBER, "involved_id_number": _ID_NUMBER,
    "plate": _PLATE, "involved_plate": _PLATE, "plate_color": "JT/T 697.7",
    "region_code": _REGION, "issuer_region_code": _REGION,
}


def without_docs(value):
    """An Avro schema fragment with every ``doc`` left out."""
    if isinstance(value, dict):
        return {k: without_docs(v) for k, v in value.items() if k != "doc"}
    if isinstance(value, list):
        return [without_docs(v) for v in value]
    return value


def avsc_record(entity: str) -> dict:
    name = contract.ENTITY_RECORDS[entity]
    return json.loads((contract.AVRO_DIR / f"{name}.avsc").read_text("utf-8"))


# ---- the road registers: what the code says today ---------------------------------------

def test_the_road_registers_come_first_in_contract_order_with_their_avro_records():
    assert tuple(DECLARED)[:5] == ROAD
    assert tuple(DECLARED)[5:] == WATER
    assert {e: DECLARED[e].record for e in DECLARED} == contract.ENTITY_RECORDS


@pytest.mark.parametrize("entity", ROAD)
def test_the_declared_avro_record_is_the_avsc_record_field_by_field(entity):
    declared = DECLARED[entity].avro_record()
    avsc = avsc_record(entity)
    assert f"{declared['namespace']}.{declared['name']}" == f"{avsc['namespace']}.{avsc['name']}"
    assert [without_docs(f) for f in declared["fields"]] == [without_docs(f) for f in avsc["fields"]]


@pytest.mark.parametrize("entity", ROAD)
def test_names_order_kinds_required_and_keys_are_the_contracts(entity):
    register = DECLARED[entity]
    specs = contract.field_specs(entity)
    assert [(f.name, f.kind, f.required) for f in register.fields] == [(s.name, s.kind, s.required) for s in specs]
    assert register.key_fields == contract.KEY_FIELDS[entity]


@pytest.mark.parametrize("entity", ROAD)
def test_labels_are_the_catalogs_preferred_ones_and_the_file_adapters_synonyms(entity):
    register = DECLARED[entity]
    assert {f.name: f.label_zh for f in register.fields} == OLD_LABELS_ZH[entity]
    assert register.column_labels() == DEFAULT_LABELS[entity]


def test_a_licences_seal_is_given_in_the_file_adapters_three_columns():
    seal = DECLARED["licence"].field("seal")
    assert tuple(column.name for column in seal.columns) == SEAL_COLUMNS
    assert not seal.in_view


def test_standards_are_the_ones_the_catalog_named():
    declared = {f.name: f.standard for e in ROAD for f in DECLARED[e].fields if f.standard}
    assert declared == OLD_FIELD_STANDARDS


def test_personal_fields_are_the_ones_the_store_masks():
    assert set(pii.ID_NUMBER_FIELDS) == {"legal_rep_id_number", "id_number", "involved_id_number"}
    assert (pii.PHONE_FIELDS, pii.KEY_FIELDS) == (("contact_phone",), ("holder_key",))
    fields = [f for e in DECLARED for f in DECLARED[e].fields]
    assert {f.name for f in fields if f.personal == "id_number"} == set(pii.ID_NUMBER_FIELDS)
    assert {f.name for f in fields if f.personal == "phone"} == set(pii.PHONE_FIELDS)
    by_key = {f.name for f in fields if f.refers_to and f.refers_to.by == registers.ENTITY_KEY}
    assert by_key == set(pii.KEY_FIELDS)


def test_canonical_identifiers_are_the_ones_adapters_write_canonically():
    assert {f.name for e in ROAD for f in DECLARED[e].fields if f.canonical} == identifiers.CANONICAL_FIELDS


def test_code_tables_are_the_contracts_on_the_same_fields():
    declared = {(e, f.name): f.code_table for e in ROAD for f in DECLARED[e].fields if f.code_table}
    assert declared == {tuple(name.split(".")): name for name in codes.CODE_TABLES}
    assert all(registers.code_tables()[name] == codes.CODE_TABLES[name] for name in codes.CODE_TABLES)


def test_every_rule_on_a_field_is_declared_on_that_field_with_its_severity():
    from_rules = {(r.entity, r.field, r.code, r.severity) for r in RULES
                  if r.field is not None and r.code not in COMPLETENESS_RULES}
    declared = {(e, f.name, code, severity) for e in DECLARED for f in DECLARED[e].fields
                for severity, codes_ in (("error", f.errors), ("warning", f.warnings)) for code in codes_}
    assert declared == from_rules


def test_rules_on_the_whole_record_are_declared_on_the_register():
    from_rules = {(r.entity, r.code, r.severity) for r in RULES if r.field is None and r.code not in UNIVERSAL_RULES}
    declared = {(e, code, severity) for e in ROAD
                for severity, codes_ in (("error", DECLARED[e].errors), ("warning", DECLARED[e].warnings))
                for code in codes_}
    assert declared == from_rules
    assert {r.entity for r in RULES if r.code in UNIVERSAL_RULES} == set(DECLARED)


# The road registers' required text fields as the stage's own table listed them before their rules
# were made from the declarations.
ROAD_REQUIRED = {
    "operator": ("uscc", "name", "region_code", "status"),
    "vehicle": ("plate", "operator_uscc", "vehicle_class", "status"),
    "practitioner": ("id_number", "name", "qualification_cert_no", "region_code", "status"),
    "licence": ("licence_no", "licence_type", "holder_key", "issuer_region_code", "status"),
    "case": ("case_no", "region_code", "stage", "violation_code"),
}


def test_completeness_rules_follow_required_text_fields_and_expected_fields():
    made = {(r.entity, r.field) for r in RULES if r.code == "required_field"}
    assert made == {(e, f.name) for e in DECLARED for f in DECLARED[e].fields if f.required and f.kind == "string"}
    assert {(e, f) for e, fields in ROAD_REQUIRED.items() for f in fields} == {m for m in made if m[0] in ROAD}
    expected = {(r.entity, r.field) for r in RULES if r.code == "expected_field"}
    assert expected == {(e, f.name) for e in DECLARED for f in DECLARED[e].fields if f.expected}


def test_references_are_the_rules_and_the_routings():
    every = {(e, f.name): f.refers_to for e in DECLARED for f in DECLARED[e].fields if f.refers_to}
    for rule in RULES:
        if rule.refers_to:
            assert rule.refers_to in every[(rule.entity, rule.field)].registers, rule.code
    declared = {key: ref for key, ref in every.items() if key[0] in ROAD}
    registry_kind = {"plate": ("vehicle", "plate"), "operator": ("operator", "uscc"),
                     "practitioner": ("practitioner", "id_number"), "ship": ("ship", "ship_id")}
    routed = {("case", field): registry_kind[kind] for field, kind in routing.INVOLVED_FIELDS}
    assert {key: (ref.registers[0], ref.by) for key, ref in declared.items() if key[0] == "case"} == routed
    assert set(declared) == {*routed, ("vehicle", "operator_uscc"), ("licence", "holder_key")}


def test_views_are_the_stores_with_the_same_columns():
    assert {r.view: e for e, r in DECLARED.items()} == {view: entity for view, (entity, _c) in VIEWS.items()}
    for view, (entity, columns) in VIEWS.items():
        aliases = tuple(column.rsplit(" AS ", 1)[1] for column in columns)
        assert DECLARED[entity].view_columns() == aliases, view


# ---- the water registers: well-formed ---------------------------------------------------

def test_a_ship_has_the_fields_and_labels_a_partys_export_uses():
    ship = DECLARED["ship"]
    assert [(f.name, f.label_zh) for f in ship.fields] == [
        ("ship_id", "船舶识别号"), ("name", "船名"), ("imo", "IMO编号"), ("mmsi", "MMSI"),
        ("port_of_registry", "船籍港"), ("gross_tonnage", "总吨"), ("ship_type", "船舶种类"),
        ("operator_uscc", "经营人统一社会信用代码"), ("status", "状态")]
    assert ship.key_fields == ("ship_id",)
    assert ship.field("imo").errors == ("invalid_imo",)
    assert ship.field("mmsi").errors == ("invalid_mmsi",) and "mmsi_foreign_mid" in ship.field("mmsi").warnings


@pytest.mark.parametrize("entity", WATER)
def test_every_water_field_has_a_label_a_kind_and_no_label_names_two_columns(entity):
    register = DECLARED[entity]
    assert contract.ENTITY_RECORDS[register.entity_type] == register.record, "carried: the contract has its record"
    for field in register.fields:
        assert field.label_zh.strip() and field.kind in contract.KINDS
        assert CJK.search(field.label_zh) or field.name == "mmsi", field.name
    labels = [label for field in register.fields for label in (field.label_zh, *field.labels)]
    assert len(labels) == len(set(labels))
    assert all(register.field(key).required for key in register.key_fields)


@pytest.mark.parametrize("entity", WATER)
def test_the_water_records_are_valid_avro(entity):
    record = DECLARED[entity].avro_record()
    parse_schema(record)
    assert [f["name"] for f in record["fields"]] == list(DECLARED[entity].field_names)


def test_every_reference_names_a_declared_register_by_a_field_it_has():
    for register in DECLARED.values():
        for field in register.fields:
            ref = field.refers_to
            if ref is None:
                continue
            assert set(ref.registers) <= set(DECLARED), (register.entity_type, field.name)
            if ref.by != registers.ENTITY_KEY:
                assert all(ref.by in DECLARED[name].field_names for name in ref.registers)
    assert DECLARED["ship"].field("operator_uscc").refers_to == registers.Reference(("shipping_enterprise",), "uscc")
    owner = DECLARED["waterway_project"].field("owner_uscc").refers_to
    assert set(owner.registers) == {"operator", "shipping_enterprise", "port_enterprise"} and owner.by == "uscc"


def test_every_code_table_exists_and_an_unconfirmed_one_only_warns():
    tables = registers.code_tables()
    for register in DECLARED.values():
        for field in register.fields:
            if field.code_table is None:
                continue
            assert tables[field.code_table], field.code_table
            table = register.code_tables.get(field.code_table)
            if table is not None and not table.confirmed:
                assert not [rule for rule in field.errors if rule.startswith("unknown_")], field.name
                assert [rule for rule in field.warnings if rule.startswith("unknown_")], field.name
    ship_types = register_table("ship", "ship.ship_type")
    assert {"bulk_carrier", "container", "oil_tanker", "passenger"} <= set(ship_types.codes)
    assert ship_types.labels()["散货船"] == "bulk_carrier"
    scope = register_table("shipping_enterprise", "shipping_enterprise.business_scope")
    assert {"coastal", "inland", "inter_provincial"} <= set(scope.codes)


def register_table(entity: str, name: str) -> registers.CodeTable:
    return DECLARED[entity].code_tables[name]


def test_water_identifier_rules_are_checks_with_the_severity_they_have():
    for entity in WATER:
        for field in DECLARED[entity].fields:
            for rule in field.rules:
                if rule in water_identifiers.CHECKS:
                    warned = rule in water_identifiers.WARNING_RULES
                    assert (rule in field.warnings) == warned, (entity, field.name, rule)
    named = {rule for e in WATER for f in DECLARED[e].fields for rule in f.rules}
    assert set(water_identifiers.CHECKS) <= named


def test_records_and_views_are_distinct_across_all_nine():
    assert len({r.record for r in DECLARED.values()}) == len({r.view for r in DECLARED.values()}) == 9


# ---- the loader: a register from a declaration alone, and what it refuses -------------------

FIXTURE = """
entity_type = "buoy"
name_zh = "航标"
name_en = "Navigation buoys"
record = "roadx.Buoy"
key = ["buoy_id"]
view = "current_buoys"

[[fields]]
name = "buoy_id"
type = "string"
required = true
label_zh = "航标编号"

[[fields]]
name = "owner_uscc"
type = "string"
label_zh = "维护单位统一社会信用代码"
refers_to = ["buoy"]
ref_by = "buoy_id"

[[fields]]
name = "status"
type = "string"
required = true
label_zh = "状态"
code_table = "buoy.status"
warnings = ["unknown_status"]

[code_tables.status]
confirmed = false
codes = {lit = ["正常"], dark = ["熄灭"]}
"""


def fixture_dir(tmp_path: Path, text: str = FIXTURE) -> Path:
    (tmp_path / registers.INDEX).write_text('registers = ["buoy"]\n', "utf-8")
    (tmp_path / "buoy.toml").write_text(text, "utf-8")
    return tmp_path


def test_a_register_loads_from_its_declaration_alone(tmp_path):
    (buoy,) = registers.load(fixture_dir(tmp_path))
    assert buoy.field_names == ("buoy_id", "owner_uscc", "status")
    assert buoy.avro_record()["fields"][1] == {"name": "owner_uscc", "type": ["null", "string"], "default": None,
                                               "doc": "维护单位统一社会信用代码"}
    assert buoy.code_tables["buoy.status"].labels() == {"正常": "lit", "熄灭": "dark"}
    assert buoy.view_columns() == ("buoy_id", "owner_uscc", "status")


@pytest.mark.parametrize("change, complaint", [
    (('label_zh = "航标编号"', 'label_zh = "航标编号"\ncolour = "red"'), "unknown keys colour"),
    (('refers_to = ["buoy"]', 'refers_to = ["lighthouse"]'), "undeclared registers lighthouse"),
    (('ref_by = "buoy_id"', 'ref_by = "name"'), "not a field of buoy"),
    (('[code_tables.status]\nconfirmed = false\ncodes = {lit = ["正常"], dark = ["熄灭"]}', ''),
     "code table buoy.status is defined nowhere"),
    (('code_table = "buoy.status"', 'code_table = "buoy.colour"'), "code table buoy.status is checked by no field"),
    (('key = ["buoy_id"]', 'key = ["owner_uscc"]'), "must be a required field"),
    (('label_zh = "状态"', 'label_zh = "航标编号"'), "names both buoy_id and status"),
    (('type = "string"\nrequired = true\nlabel_zh = "状态"', 'type = "float"\nrequired = true\nlabel_zh = "状态"'),
     "type the contract does not know"),
    (('warnings = ["unknown_status"]', 'warnings = ["unknown_status"]\nerrors = ["unknown_status"]'),
     "both an error and a warning"),
    (('entity_type = "buoy"', 'entity_type = "beacon"'), "must be the file's name"),
])
def test_the_loader_refuses_a_declaration_that_is_not_well_formed(tmp_path, change, complaint):
    old, new = change
    assert old in FIXTURE
    with pytest.raises(SchemaLoadError, match=re.escape(complaint)):
        registers.load(fixture_dir(tmp_path, FIXTURE.replace(old, new, 1)))
