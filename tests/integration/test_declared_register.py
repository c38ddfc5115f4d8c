"""A register the exchange does not have, added from a declaration alone: a copy of the exchange's
declarations with ``registers/berth.toml`` (港口泊位) added to its index, named by
``ROADX_REGISTERS_DIR``, and a parties file that lets Jiangsu publish it. A port enterprise's file
and a file of berths then go through roadx produce files, the real stream worker and the real sink
(in a child process that reads those declarations: ``declared_register_line``), with no code of
the register's own anywhere: the envelope carries it, the stage runs the rules its declaration
names (conformity, code table, the reference to a port enterprise, the party's region), the sink
makes its view, the hub receipts it, and roadx check finds on the file what the line found."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

from schemas import registers
from schemas.parties import DEFAULT_PARTIES
from schemas.settings import Settings, to_environ

pytestmark = pytest.mark.integration
HERE = Path(__file__).parent
PARTY = "32"
PORT_ENTERPRISES = "统一社会信用代码,企业名称,港口经营许可证号,所在港口,行政区划代码,经营状态\n" \
                   "91350100M000100Y43,南京港龙潭集装箱有限公司,(苏)港经证(0001)号,南京港,320115,营业\n"
BERTHS = ("泊位编码,泊位名称,港口经营人统一社会信用代码,行政区划代码,泊位长度(米),泊位用途\n"
          "NJ-LT-01,龙潭集装箱1号泊位,91350100M000100Y43,320115,350,集装箱泊位\n"   # row 2: no finding
          "NJ-LT-02,龙潭散货2号泊位,91110000600037341L,320115,,散货泊位\n"         # row 3: its operator unknown, no length
          "NJ-LT-03,坏代码泊位,91350100M000100Y44,320115,200,通用泊位\n"           # row 4: a USCC's wrong check character
          "NJ-LT-04,外省泊位,91350100M000100Y43,440300,180,滚装泊位\n")            # row 5: another province's region, an unknown use


def declarations_with_berths(directory: Path) -> Path:
    """A copy of the exchange's declarations with the berth register added last to the index."""
    for path in registers.DIRECTORY.glob("*.toml"):
        shutil.copy(path, directory / path.name)
    shutil.copy(HERE / "registers" / "berth.toml", directory / "berth.toml")
    names = tomllib.loads((registers.DIRECTORY / registers.INDEX).read_text("utf-8"))["registers"]
    (directory / registers.INDEX).write_text(f"registers = {json.dumps([*names, 'berth'])}\n", "utf-8")
    return directory


def parties_with_berths(path: Path) -> Path:
    """The built-in parties, Jiangsu allowed to publish berths too."""
    entries = []
    for party in DEFAULT_PARTIES:
        entry = party.as_dict()
        if party.code == PARTY:
            entry["registers"] = [*entry["registers"], "berth"]
        entries.append(entry)
    path.write_text(json.dumps({"parties": entries}, ensure_ascii=False), "utf-8")
    return path


@pytest.fixture
def line(bootstrap, unique, tmp_path) -> dict:
    settings = Settings(data_dir=tmp_path / "roadx", bootstrap_servers=bootstrap, provinces=(PARTY,),
                        topic_prefix=f"t{unique}.", partitions=1, national_partitions=2, sink_flush_seconds=0.3,
                        stream_batch_size=100, reference_grace_seconds=3600)
    inbox = tmp_path / "inbox"
    inbox.mkdir()
    ports, berths = inbox / "港口企业-20240601.csv", inbox / "港口泊位-20240601.csv"
    ports.write_text(PORT_ENTERPRISES, "utf-8")
    berths.write_text(BERTHS, "utf-8")
    directory = tmp_path / "registers"
    directory.mkdir()
    env = {**{k: v for k, v in os.environ.items() if not k.startswith("ROADX_")}, **to_environ(settings),
           registers.DIRECTORY_ENV: str(declarations_with_berths(directory)),
           "ROADX_PARTIES_FILE": str(parties_with_berths(tmp_path / "parties.json")),
           "PYTHONPATH": os.pathsep.join([str(HERE), os.environ.get("PYTHONPATH", "")])}
    done = subprocess.run([sys.executable, str(HERE / "declared_register_line.py"), PARTY, "3",
                           f"port_enterprise={ports}", f"berth={berths}"],
                          capture_output=True, text=True, env=env, cwd=tmp_path, timeout=400)
    assert done.returncode == 0, done.stderr[-4000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


def test_a_register_declared_alone_is_carried_checked_stored_and_receipted_end_to_end(line):
    # Exit 1 for the berths: a row was refused; the good rows are loaded and receipted all the same.
    assert line["exits"] == [0, 1]
    assert line["columns"] == ["entity_key", "berth_code", "name", "operator_uscc", "region_code", "length_m",
                               "berth_use", "province", "last_op", "seq", "ts"]
    assert [row[:8] for row in line["rows"]] == [
        ["berth:NJ-LT-01", "NJ-LT-01", "龙潭集装箱1号泊位", "91350100M000100Y43", "320115", 350, "container", PARTY],
        ["berth:NJ-LT-02", "NJ-LT-02", "龙潭散货2号泊位", "91110000600037341L", "320115", None, "bulk", PARTY],
        ["berth:NJ-LT-04", "NJ-LT-04", "外省泊位", "91350100M000100Y43", "440300", 180, "滚装泊位", PARTY],
    ]
    assert [(r["status"], r["expected"], r["accepted"]) for r in line["receipts"]] == [("accepted", 1, 1),
                                                                                      ("accepted", 3, 3)]
    (entry,) = line["catalog"]
    assert (entry["name_zh"], entry["key_fields"], entry["publishers"]) == ("港口泊位", ["berth_code"], [PARTY])
    # The hub ran the rules the declaration names, and only those.
    assert sorted((key, rule) for key, rule, _severity, _dimension in line["findings"]) == [
        ("berth:NJ-LT-02", "expected_field"), ("berth:NJ-LT-02", "unknown_port_enterprise"),
        ("berth:NJ-LT-04", "region_outside_party"), ("berth:NJ-LT-04", "unknown_berth_use")]
    assert {rule: (severity, dimension) for _key, rule, severity, dimension in line["findings"]} == {
        "expected_field": ("warning", "completeness"), "unknown_port_enterprise": ("warning", "relational"),
        "region_outside_party": ("warning", "relational"), "unknown_berth_use": ("warning", "conformity")}


def test_roadx_check_finds_on_the_declared_registers_file_what_the_adapter_and_the_hub_found(line):
    checked = line["check"]
    assert (checked["rows"], checked["rejected_rows"]) == (4, 1)
    assert line["check_report"] == line["adapter_report"]
    assert [(row, rule) for stage, row, _key, rule, _dimension in checked["findings"] if stage == "adapter"] == [
        (4, "invalid_uscc")]
    # Offline and with no snapshot, who is registered is not known: the check leaves the reference rule
    # out and finds the line's other findings on the rows it took in.
    hub = {(key, rule) for key, rule, _severity, _dimension in line["findings"]}
    offline = {(key, rule) for stage, _row, key, rule, _dimension in checked["findings"] if stage == "hub"}
    assert offline == hub - {("berth:NJ-LT-02", "unknown_port_enterprise")}
