"""The parties of the exchange: the built-in set, a parties file and its checks, the selection."""

from __future__ import annotations

import json

import pytest

from schemas import parties
from schemas.errors import InvalidIdentifier, SettingsError
from schemas.identifiers import PROVINCES
from schemas.parties import (CORPS, NAVIGATION_ADMINISTRATION, PROVINCE, ROAD_REGISTERS, WATER_REGISTERS,
                             default_parties, known_registers, load_parties, parse_parties, region_filter)
from schemas.settings import resolve, to_environ


def entry(**overrides):
    base = {"code": "CJ", "name": "长江航务管理局", "name_en": "Changjiang", "kind": "navigation_administration",
            "jurisdiction": "长江干线", "registers": ["ship", "case"]}
    return {**base, **overrides}


def test_the_built_in_set_has_the_31_provinces_the_corps_and_two_navigation_administrations():
    set_ = default_parties()
    assert set_.of_kind(PROVINCE) == tuple(PROVINCES)
    assert set_.of_kind(CORPS) == ("66",)
    assert set_.of_kind(NAVIGATION_ADMINISTRATION) == ("CJ", "ZJ")
    assert set_["44"].name == "广东" and set_["44"].name_en == "Guangdong" and set_["44"].regions == ("44",)
    assert (set_["66"].name, set_["CJ"].name, set_["ZJ"].name) == ("新疆生产建设兵团", "长江航务管理局", "珠江航务管理局")


def test_the_corps_code_is_no_province_level_region_code():
    assert "66" not in PROVINCES and "66" not in parties.OTHER_REGION_CODES
    assert default_parties()["65"].name == "新疆"  # Xinjiang itself stays a province of its own


def test_who_publishes_which_register():
    set_ = default_parties()
    assert set(set_["44"].registers) == set(known_registers())  # a province: road and its own waters
    assert set(set_["66"].registers) == set(ROAD_REGISTERS)
    assert set(set_["CJ"].registers) == set(WATER_REGISTERS) | {"case"}
    assert set_.refusal("CJ", "case") is None and set_.refusal("CJ", "ship") is None
    assert "CJ" in set_.refusal("CJ", "vehicle") and "vehicle" in set_.refusal("CJ", "vehicle")
    assert set_.refusal("66", "ship") is not None
    assert "not a party" in set_.refusal("XX", "case")


def test_a_json_parties_file_replaces_the_built_in_set(tmp_path):
    path = tmp_path / "parties.json"
    path.write_text(json.dumps({"parties": [
        entry(), {"code": "44", "name": "广东", "name_en": "Guangdong", "kind": "province",
                  "jurisdiction": "广东省", "registers": list(ROAD_REGISTERS), "regions": ["44"]}]}), "utf-8")
    loaded = load_parties(path)
    assert list(loaded) == ["CJ", "44"] and loaded["CJ"].registers == ("ship", "case")


def test_a_toml_parties_file_is_read_too(tmp_path):
    path = tmp_path / "parties.toml"
    path.write_text('[[parties]]\ncode = "ZJ"\nname = "珠江航务管理局"\nname_en = "Zhujiang"\n'
                    'kind = "navigation_administration"\njurisdiction = "西江航运干线"\nregisters = ["ship"]\n'
                    'regions = ["44", "45"]\n', "utf-8")
    assert load_parties(path)["ZJ"].regions == ("44", "45")


@pytest.mark.parametrize("bad, message", [
    (entry(kind="navy"), r"entry 1 \(code 'CJ'\): field 'kind': 'navy' is not one of"),
    (entry(code="cj"), r"entry 1 \(code 'cj'\): field 'code': 'cj' must be 2 to 8 capital letters or digits"),
    (entry(code="C.J"), r"field 'code'"),
    (entry(code="45"), r"field 'code': 45 is a GB/T 2260 province-level code"),
    (entry(code="81", kind="corps"), r"field 'code': 81 is a GB/T 2260 province-level code"),
    (entry(code="99", kind="province"), r"field 'code': a province's code is its two-digit GB/T 2260 code"),
    (entry(registers=["ship", "boat"]), r"field 'registers': unknown register\(s\) boat"),
    (entry(registers=[]), r"field 'registers' must be a non-empty list"),
    (entry(name=""), r"field 'name' is required"),
    (entry(regions=["4A"]), r"field 'regions'"),
    (entry(colour="blue"), r"unknown field\(s\) colour"),
    ({k: v for k, v in entry().items() if k != "jurisdiction"}, r"field 'jurisdiction' is required"),
    ("CJ", r"entry 1: an entry is a table"),
])
def test_a_bad_entry_is_refused_naming_the_entry_and_field(bad, message):
    with pytest.raises(SettingsError, match=message):
        parse_parties({"parties": [bad]}, "parties file p.json")


def test_a_code_twice_and_an_empty_file_are_refused():
    with pytest.raises(SettingsError, match="'CJ' appears twice"):
        parse_parties({"parties": [entry(), entry()]})
    with pytest.raises(SettingsError, match="no parties"):
        parse_parties({"parties": []})
    with pytest.raises(SettingsError, match="unknown top-level key"):
        parse_parties({"parties": [entry()], "party": []})


def test_an_unreadable_or_malformed_file_names_itself(tmp_path):
    with pytest.raises(SettingsError, match="cannot read ROADX_PARTIES_FILE"):
        load_parties(tmp_path / "missing.json")
    path = tmp_path / "p.toml"
    path.write_text("[[parties]\n", "utf-8")
    with pytest.raises(SettingsError, match=r"p.toml is not valid TOML"):
        load_parties(path)


def test_by_default_the_provinces_take_part_as_before():
    settings = resolve({})
    assert settings.provinces == tuple(PROVINCES)
    assert len(settings.parties()) == 34


def test_roadx_parties_selects_and_roadx_provinces_is_its_alias():
    assert resolve({"ROADX_PARTIES": "44,CJ,66"}).provinces == ("44", "CJ", "66")
    assert resolve({"ROADX_PROVINCES": "44,CJ"}).provinces == ("44", "CJ")
    assert resolve({"ROADX_PARTIES": "all"}).provinces[-3:] == ("66", "CJ", "ZJ")
    with pytest.raises(SettingsError, match=r"unknown party code\(s\) XX"):
        resolve({"ROADX_PARTIES": "44,XX"})
    with pytest.raises(SettingsError, match="disagree"):
        resolve({"ROADX_PARTIES": "44", "ROADX_PROVINCES": "11"})


def test_a_parties_file_setting_selects_its_provinces_by_default(tmp_path):
    path = tmp_path / "parties.json"
    path.write_text(json.dumps([entry(), {"code": "44", "name": "广东", "name_en": "Guangdong", "kind": "province",
                                          "jurisdiction": "广东省", "registers": ["case"]}]), "utf-8")
    settings = resolve({"ROADX_PARTIES_FILE": str(path)})
    assert settings.provinces == ("44",)
    assert settings.registers_of() == {"44": frozenset({"case"})}
    with pytest.raises(SettingsError, match=r"unknown party code\(s\) 11"):
        resolve({"ROADX_PARTIES_FILE": str(path), "ROADX_PARTIES": "11"})
    path.write_text(json.dumps([entry(kind="navy")]), "utf-8")
    with pytest.raises(SettingsError, match="field 'kind'"):
        resolve({"ROADX_PARTIES_FILE": str(path), "ROADX_PARTIES": "CJ"})


def test_a_child_process_resolves_the_same_selection(tmp_path):
    settings = resolve({"ROADX_PARTIES": "44,CJ", "ROADX_DATA_DIR": str(tmp_path)})
    env = to_environ(settings)
    assert env["ROADX_PARTIES"] == env["ROADX_PROVINCES"] == "44,CJ"
    assert resolve(env).provinces == ("44", "CJ")
    assert resolve({**env, **to_environ(settings.with_overrides(provinces=("44",)))}).provinces == ("44",)


def test_party_keys_are_known_for_a_navigation_administration(tmp_path):
    settings = resolve({"ROADX_PARTIES": "44,CJ", "ROADX_DATA_DIR": str(tmp_path / "d")})
    assert settings.party_keys("CJ").party == "CJ"
    with pytest.raises(SettingsError, match="unknown party 'ZJ'"):
        settings.party_keys("ZJ")  # a party of the set that does not take part


def test_the_monthly_report_names_parties_that_are_not_provinces():
    from sinks.report_html import province_label
    assert province_label("CJ") == "CJ 长江航务管理局 Changjiang River Administration of Navigational Affairs"
    assert province_label("66").startswith("66 新疆生产建设兵团")
    assert province_label("44") == "44 广东 Guangdong"


TAKING_PART = {code: default_parties()[code] for code in ("11", "44", "66", "CJ")}


@pytest.mark.parametrize("party, given, selected", [
    ("44", "44", None), ("44", "4403", "4403"), ("44", "440305", "440305"),
    ("CJ", "CJ", None), ("CJ", "42", "42"), ("CJ", "4201", "4201"), ("CJ", "320100", "320100"),
    ("66", "66", None), ("66", "6601", "6601"), ("66", "659001", "659001"),
])
def test_a_region_filter_is_the_partys_own_code_or_a_region_in_its_jurisdiction(party, given, selected):
    assert region_filter(given, TAKING_PART[party], TAKING_PART) == selected


@pytest.mark.parametrize("party, given, message", [
    ("44", "4", "is neither a party of the exchange \\(11, 44, 66, CJ\\) nor a region prefix"),
    ("44", "440", "nor a region prefix"), ("44", "4403050", "nor a region prefix"), ("44", "44a3", "nor a region prefix"),
    ("44", "", "nor a region prefix"), ("44", "４４", "nor a region prefix"), ("44", "11'; --", "nor a region prefix"),
    ("44", "1101", "is not within the jurisdiction of party 44 \\(广东: regions 44\\)"),
    ("CJ", "4403", "is not within the jurisdiction of party CJ \\(长江航务管理局: regions 53, 51, 50, 42, 43, 36, 34, 32, 31\\)"),
    ("66", "6501", "is not within the jurisdiction of party 66"),
    ("CJ", "ZZ", "'ZZ' is neither a party of the exchange"),
    ("CJ", "ZJ", "'ZJ' is neither a party of the exchange"),  # a party, but not one taking part
    ("CJ", "44", "is not within the jurisdiction of party CJ"),
    ("44", "CJ", "'CJ' is another party's code, not a region of party 44 \\(give 44 itself or a prefix of 44\\)"),
])
def test_a_region_filter_that_is_malformed_unknown_or_outside_the_jurisdiction_is_refused(party, given, message):
    with pytest.raises(InvalidIdentifier, match=message) as refused:
        region_filter(given, TAKING_PART[party], TAKING_PART)
    assert refused.value.rule == "invalid_region_code"
