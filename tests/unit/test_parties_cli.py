"""roadx parties, and --party on every command that took --province (the old flag an alias)."""

from __future__ import annotations

import json

import pytest

from deploy import cli


@pytest.fixture
def clean_env(monkeypatch, tmp_path):
    import os
    for name in [n for n in os.environ if n.startswith("ROADX_")]:
        monkeypatch.delenv(name)
    monkeypatch.setenv("ROADX_DATA_DIR", str(tmp_path / "d"))


def test_roadx_parties_lists_code_name_kind_and_registers(clean_env, capsys):
    assert cli.main(["parties"]) == 0
    out = capsys.readouterr().out
    lines = {line.split()[1] if line.startswith("*") else line.split()[0]: line for line in out.splitlines()[1:-1]}
    assert len(lines) == 34
    assert "长江航务管理局" in lines["CJ"] and "navigation_administration" in lines["CJ"]
    assert "ship" in lines["CJ"] and "vehicle" not in lines["CJ"]
    assert lines["44"].startswith("* 44") and not lines["CJ"].startswith("*")  # the provinces take part by default
    assert "新疆生产建设兵团" in lines["66"] and "corps" in lines["66"]


def test_roadx_parties_json_says_who_takes_part(clean_env, monkeypatch, capsys):
    monkeypatch.setenv("ROADX_PARTIES", "44,CJ")
    assert cli.main(["parties", "--json", "--taking-part"]) == 0
    listed = json.loads(capsys.readouterr().out)
    assert [p["code"] for p in listed] == ["44", "CJ"]
    assert listed[1]["name_en"].startswith("Changjiang") and listed[1]["taking_part"] is True
    assert "case" in listed[1]["registers"] and listed[1]["jurisdiction"]


def test_a_bad_parties_file_is_a_clear_command_error(clean_env, monkeypatch, tmp_path, capsys):
    path = tmp_path / "parties.json"
    path.write_text(json.dumps({"parties": [{"code": "CJ", "name": "长江航务管理局", "name_en": "CJ", "kind": "navy",
                                             "jurisdiction": "长江", "registers": ["ship"]}]}), "utf-8")
    monkeypatch.setenv("ROADX_PARTIES_FILE", str(path))
    assert cli.main(["parties"]) == 2
    assert "entry 1 (code 'CJ'): field 'kind'" in capsys.readouterr().err


@pytest.mark.parametrize("argv", [
    ["produce", "files", "{flag}", "CJ", "--entity", "case", "a.csv"],
    ["produce", "db", "{flag}", "CJ", "--url", "sqlite:///x.db", "--table", "t", "--entity", "case", "--key", "k",
     "--cursor", "c"],
    ["subscribe", "{flag}", "CJ"],
    ["cases", "list", "{flag}", "CJ"],
    ["cases", "receipt", "abc", "{flag}", "CJ"],
])
@pytest.mark.parametrize("flag", ["--party", "--province"])
def test_party_and_its_old_name_province_set_the_same_option(argv, flag):
    args = cli.build_parser().parse_args([a.replace("{flag}", flag) for a in argv])
    assert args.province == "CJ"


@pytest.mark.parametrize("flag", ["--parties", "--provinces"])
def test_acl_takes_parties_and_its_old_name(clean_env, monkeypatch, flag, capsys):
    monkeypatch.setenv("ROADX_PARTIES", "44,CJ")
    assert cli.main(["acl", "--format", "kafka", flag, "CJ"]) == 0
    out = capsys.readouterr().out
    assert "User:prov-CJ" in out and "prov.CJ.changes" in out and "prov-44" not in out


def test_help_texts_say_party(capsys):
    with pytest.raises(SystemExit):
        cli.build_parser().parse_args(["produce", "files", "--help"])
    assert "--party P, --province P" in capsys.readouterr().out


def test_the_file_adapter_refuses_a_register_its_party_may_not_publish_before_reading(clean_env, monkeypatch,
                                                                                      tmp_path, capsys):
    monkeypatch.setenv("ROADX_PARTIES", "44,CJ")
    (tmp_path / "a.csv").write_text("uscc\n", "utf-8")
    assert cli.main(["produce", "files", "--party", "CJ", "--entity", "operator", str(tmp_path / "a.csv")]) == 2
    err = capsys.readouterr().err
    assert "register_not_allowed: party CJ (长江航务管理局, navigation_administration) may not publish the operator" in err
    assert not (tmp_path / "d" / "spool").exists()  # nothing was read or spooled


def test_the_database_adapter_refuses_a_register_its_party_may_not_publish_before_connecting(clean_env, monkeypatch,
                                                                                             tmp_path, capsys):
    monkeypatch.setenv("ROADX_PARTIES", "44,66,CJ")
    source = tmp_path / "source.db"
    assert cli.main(["produce", "db", "--party", "CJ", "--url", f"sqlite:///{source}", "--table", "t",
                     "--entity", "vehicle", "--key", "k", "--cursor", "c", "--once"]) == 2
    assert "register_not_allowed: party CJ" in capsys.readouterr().err
    assert not source.exists()  # the source was never opened


def test_subscribing_as_a_party_not_taking_part_names_the_parties_that_do(clean_env, monkeypatch, capsys):
    monkeypatch.setenv("ROADX_PARTIES", "44,CJ")
    monkeypatch.setenv("ROADX_BOOTSTRAP_SERVERS", "127.0.0.1:9")  # refused before any connection
    assert cli.main(["subscribe", "--party", "ZJ"]) == 2
    assert "unknown party 'ZJ': the parties taking part are 44, CJ" in capsys.readouterr().err
