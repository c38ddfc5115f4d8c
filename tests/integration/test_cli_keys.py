"""`roadx keys issue|revoke|list` on a data directory: a token shown once, listed never, refused once revoked;
`roadx keys init|register|withdraw|registered|hub-public|trust-hub`: a party's keys made on its side, the hub
registering what it is handed."""

from __future__ import annotations

import datetime as dt
import io
import json
import os
import re
import stat
from pathlib import Path

import pytest

from deploy.cli import main
from schemas.credentials import Credentials, credentials_file

pytestmark = pytest.mark.integration


@pytest.fixture(autouse=True)
def no_roadx_environment(monkeypatch):
    for name in [n for n in os.environ if n.startswith("ROADX_")]:
        monkeypatch.delenv(name)


@pytest.fixture
def roadx(tmp_path, capsys):
    """Run ``roadx keys …`` on ``tmp_path``: (exit status, stdout, stderr)."""
    def run(*args: str) -> tuple[int, str, str]:
        code = main(["keys", *args, "--data-dir", str(tmp_path)])
        out, err = capsys.readouterr()
        return code, out, err
    return run


def test_issue_prints_the_token_once_and_list_never_shows_it(roadx, tmp_path):
    code, out, err = roadx("issue", "--party", "44")
    assert code == 0
    token = out.strip()
    assert out == token + "\n" and token.startswith("rdx_")  # stdout is the token alone
    credential_id = token.split("_")[1]
    assert f"issued credential {credential_id} to party 44" in err and token not in err
    assert Credentials.load(credentials_file(tmp_path)).authenticate(token).party == "44"
    assert token[13:] not in credentials_file(tmp_path).read_text("utf-8")

    code, out, err = roadx("list")
    assert code == 0 and err == ""
    header, row = out.splitlines()
    assert header.split() == ["ID", "PARTY", "CREATED", "REVOKED"]
    assert row.split()[:2] == [credential_id, "44"] and row.split()[3] == "-"
    assert token[13:] not in out and "sha256" not in out

    code, out, _err = roadx("list", "--json")
    listed = json.loads(out)
    assert code == 0 and [(c["id"], c["party"], c["revoked"]) for c in listed] == [(credential_id, "44", None)]
    assert set(listed[0]) == {"id", "party", "created", "revoked"}


def test_the_file_is_private(roadx, tmp_path):
    assert roadx("issue", "--party", "11")[0] == 0
    path = credentials_file(tmp_path)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600 and stat.S_IMODE(path.parent.stat().st_mode) == 0o700


def test_revoke_one_credential_then_a_party(roadx, tmp_path):
    tokens = [roadx("issue", "--party", party)[1].strip() for party in ("44", "44", "11")]
    ids = [token.split("_")[1] for token in tokens]

    code, out, _err = roadx("revoke", ids[0])
    assert code == 0 and out == f"revoked credential {ids[0]} of party 44\n"
    credentials = Credentials.load(credentials_file(tmp_path))
    assert credentials.authenticate(tokens[0]) is None and credentials.authenticate(tokens[1]) is not None

    code, out, _err = roadx("revoke", "--party", "44")
    assert code == 0 and out == f"revoked credential {ids[1]} of party 44\n"
    credentials = Credentials.load(credentials_file(tmp_path))
    assert credentials.authenticate(tokens[1]) is None and credentials.authenticate(tokens[2]).party == "11"

    revoked = {row.split()[0]: row.split()[3] for row in roadx("list")[1].splitlines()[1:]}
    assert revoked[ids[0]] != "-" and revoked[ids[1]] != "-" and revoked[ids[2]] == "-"


def test_an_unknown_party_is_refused_with_exit_status_2(roadx, tmp_path):
    code, out, err = roadx("issue", "--party", "99")
    assert code == 2 and out == ""
    assert err.startswith("roadx: error: unknown party '99': the known parties are 11, 12,") and err.count("\n") == 1
    assert not credentials_file(tmp_path).exists()


def test_a_party_outside_roadx_provinces_is_refused(roadx, monkeypatch):
    monkeypatch.setenv("ROADX_PROVINCES", "11,12")
    code, _out, err = roadx("issue", "--party", "44")
    assert code == 2 and err == "roadx: error: unknown party '44': the known parties are 11, 12\n"


@pytest.mark.parametrize("args, message", [
    (("revoke", "ffffffff"), "no credential 'ffffffff' in"),
    (("revoke", "--party", "44"), "party '44' has no active credential in"),
])
def test_revoking_what_is_not_there_is_refused_with_exit_status_2(roadx, tmp_path, args, message):
    code, out, err = roadx(*args)
    assert code == 2 and out == "" and err.startswith(f"roadx: error: {message}")


def test_revoke_needs_an_id_or_a_party(roadx):
    with pytest.raises(SystemExit) as exited:
        roadx("revoke")
    assert exited.value.code == 2


def test_an_unsafe_or_corrupt_file_is_refused_naming_it(roadx, tmp_path):
    assert roadx("issue", "--party", "44")[0] == 0
    path = credentials_file(tmp_path)
    os.chmod(path, 0o644)
    code, _out, err = roadx("list")
    assert code == 2 and err.startswith(f"roadx: error: {path} is readable or writable by group or others")
    path.write_text("{", "utf-8")
    os.chmod(path, 0o600)
    code, _out, err = roadx("issue", "--party", "44")
    assert code == 2 and err.startswith(f"roadx: error: {path} is not a credentials file")
    assert path.read_text("utf-8") == "{"


def test_an_empty_list_says_where_it_looked(roadx, tmp_path):
    code, out, _err = roadx("list")
    assert code == 0 and out == f"no credentials in {credentials_file(tmp_path)}\n"
    assert json.loads(roadx("list", "--json")[1]) == []


# -- the parties' signing keys: init on the party's side, register, withdraw, registered on the hub's --
@pytest.fixture
def sides(tmp_path, capsys):
    """Run ``roadx keys …`` with the hub's data directory ``tmp_path/hub`` and the parties'
    directory ``tmp_path/parties`` (``--parties-dir`` where the command takes it)."""
    hub, parties = tmp_path / "hub", tmp_path / "parties"
    party_side = {"init", "trust-hub"}

    def run(*args: str) -> tuple[int, str, str]:
        extra = ["--parties-dir", str(parties)] if args[0] in party_side else []
        code = main(["keys", *args, "--data-dir", str(hub), *extra])
        out, err = capsys.readouterr()
        return code, out, err
    run.hub, run.parties = hub, parties
    return run


def _init(sides, *args: str) -> tuple[str, Path]:
    code, out, err = sides("init", "--party", "44", *args)
    assert code == 0 and err == "", err
    key_id = re.search(r"^made key (44-[0-9a-f]{8}) of party 44, valid from ", out, re.MULTILINE).group(1)
    registration = Path(re.search(r"^registration: (\S+)$", out, re.MULTILINE).group(1))
    return key_id, registration


def test_init_makes_a_partys_keys_on_its_side_only_and_says_what_to_hand_the_hub(sides):
    key_id, registration = _init(sides)
    where = sides.parties / "44" / "keys" / key_id
    assert registration == where / "registration.json"
    assert {p.name: stat.S_IMODE(p.stat().st_mode) for p in where.iterdir()} == {
        "sm2.key": 0o600, "event.secret": 0o600, "registration.json": 0o600}
    assert "PRIVATE KEY" in (where / "sm2.key").read_text("ascii")
    assert "PRIVATE KEY" not in registration.read_text("utf-8")
    assert not (sides.hub / "keys").exists()  # nothing on the hub's side until it registers


def test_the_parties_directory_defaults_beside_the_data_directory_or_comes_from_the_environment(
        tmp_path, capsys, monkeypatch):
    assert main(["keys", "init", "--party", "11", "--data-dir", str(tmp_path / "hub")]) == 0
    assert "registration: " + str(tmp_path / "hub-parties" / "11" / "keys") in capsys.readouterr().out
    monkeypatch.setenv("ROADX_PARTIES_DIR", str(tmp_path / "elsewhere"))
    assert main(["keys", "init", "--party", "11", "--data-dir", str(tmp_path / "hub")]) == 0
    assert "registration: " + str(tmp_path / "elsewhere" / "11" / "keys") in capsys.readouterr().out


def test_register_then_registered_lists_the_key_and_never_its_secrets(sides):
    key_id, registration = _init(sides)
    code, out, err = sides("register", str(registration))
    assert code == 0 and err == ""
    assert out.startswith(f"registered key {key_id} of party 44, valid from ")
    assert f"keys of party 44 accepted now: {key_id}\n" in out
    secret = json.loads(registration.read_text("utf-8"))["event_secret"]

    code, out, err = sides("registered")
    header, row = out.splitlines()
    assert code == 0 and header.split() == ["PARTY", "KEY-ID", "STATE", "NOT-BEFORE", "NOT-AFTER", "REGISTERED",
                                            "REVOKED"]
    assert row.split()[:3] == ["44", key_id, "usable"] and row.split()[6] == "-"
    code, out, _err = sides("registered", "--json")
    (listed,) = json.loads(out)
    assert (listed["party"], listed["key_id"], listed["state"], listed["revoked"]) == ("44", key_id, "usable", None)
    assert set(listed) == {"party", "key_id", "not_before", "not_after", "registered", "revoked", "state"}
    for shown in (out, sides("registered")[1]):
        assert secret not in shown and "KEY-----" not in shown
    # The hub holds the public key and the secret it was given, and no private key of the party.
    registry = (sides.hub / "keys" / "parties.json").read_text("utf-8")
    assert secret in registry and "PRIVATE KEY" not in registry


def test_register_reads_standard_input(sides, monkeypatch):
    key_id, registration = _init(sides)
    monkeypatch.setattr("sys.stdin", io.StringIO(registration.read_text("utf-8")))
    code, out, _err = sides("register", "-")
    assert code == 0 and out.startswith(f"registered key {key_id} of party 44")


def test_register_refuses_a_malformed_file_an_unknown_party_and_a_key_registered_already(sides, monkeypatch):
    key_id, registration = _init(sides)
    broken = sides.hub.parent / "broken.json"
    broken.write_text("{", "utf-8")
    code, out, err = sides("register", str(broken))
    assert code == 2 and out == "" and err.startswith(f"roadx: error: {broken} is not a registration: it does not "
                                                      f"parse as JSON")
    fields = json.loads(registration.read_text("utf-8"))
    del fields["public_key"]
    broken.write_text(json.dumps(fields), "utf-8")
    code, _out, err = sides("register", str(broken))
    assert code == 2 and err.startswith(f"roadx: error: cannot register {broken}: the registration is malformed: "
                                        f"expected the fields")
    code, _out, err = sides("register", str(broken.with_name("missing.json")))
    assert code == 2 and "no registration file" in err

    monkeypatch.setenv("ROADX_PROVINCES", "11,12")
    code, _out, err = sides("register", str(registration))
    assert code == 2 and err == (f"roadx: error: cannot register {registration}: unknown party '44': the known "
                                 f"parties are 11, 12\n")
    monkeypatch.delenv("ROADX_PROVINCES")
    assert sides("register", str(registration))[0] == 0
    code, _out, err = sides("register", str(registration))
    assert code == 2 and err.endswith(f"key {key_id} is registered already\n")
    assert [row.split()[1] for row in sides("registered")[1].splitlines()[1:]] == [key_id]


def test_rotation_overlaps_until_the_old_key_is_withdrawn(sides):
    old, old_registration = _init(sides)
    assert sides("register", str(old_registration))[0] == 0
    later = (dt.datetime.now(dt.timezone.utc) + dt.timedelta(hours=1)).replace(microsecond=0)
    new, new_registration = _init(sides, "--not-before", later.isoformat())
    assert f"the party's other key sets still valid: {old}" in sides("init", "--party", "44")[1]
    code, out, _err = sides("register", str(new_registration))
    assert code == 0 and f"keys of party 44 accepted now: {old}\n" in out  # the new one begins later
    states = {row.split()[1]: row.split()[2] for row in sides("registered")[1].splitlines()[1:]}
    assert states[old] == "usable" and states[new] == "pending"

    code, out, err = sides("withdraw", old)
    assert code == 0 and out.startswith(f"withdrew key {old} of party 44 at ")
    assert "what is signed with it is refused from now on" in out
    assert "has no key accepted now" in err  # the new one has not begun yet: said, not refused
    states = {row.split()[1]: row.split()[2] for row in sides("registered")[1].splitlines()[1:]}
    assert states[old] == "withdrawn" and states[new] == "pending"
    code, _out, err = sides("withdraw", old)
    assert code == 2 and err.startswith(f"roadx: error: key {old} was revoked already, at ")
    code, _out, err = sides("withdraw", "44-00000000")
    assert code == 2 and err.startswith("roadx: error: no key '44-00000000' is registered in")


def test_a_not_before_without_its_utc_offset_is_a_usage_error(sides, capsys):
    with pytest.raises(SystemExit) as exited:
        sides("init", "--party", "44", "--not-before", "2030-01-01T00:00:00")
    assert exited.value.code == 2 and "has no UTC offset" in capsys.readouterr().err


def test_the_party_keeps_the_hubs_public_key_printed_by_hub_public(sides):
    code, pem, err = sides("hub-public")
    assert code == 0 and err == "" and pem.startswith("-----BEGIN PUBLIC KEY-----")
    assert sides("hub-public")[1] == pem  # made once
    exported = sides.hub.parent / "hub.pem"
    exported.write_text(pem, "ascii")
    code, out, _err = sides("trust-hub", "--party", "44", str(exported))
    kept = sides.parties / "44" / "hub.pem"
    assert code == 0 and out == f"party 44 now verifies the hub's receipts with the key in {kept}\n"
    assert kept.read_text("ascii") == pem and stat.S_IMODE(kept.stat().st_mode) == 0o600
    exported.write_text("not a key", "ascii")
    code, _out, err = sides("trust-hub", "--party", "44", str(exported))
    assert code == 2 and "is not an SM2 public key in PEM" in err and kept.read_text("ascii") == pem


def test_a_key_file_others_may_read_is_refused_with_the_chmod_that_fixes_it(sides):
    key_id, registration = _init(sides)
    private = sides.parties / "44" / "keys" / key_id / "sm2.key"
    os.chmod(private, 0o644)
    code, out, err = sides("init", "--party", "44")
    assert code == 2 and out == ""
    assert err == (f"roadx: error: {private} is readable or writable by group or others (mode 0644): "
                   f"make it 0600 (chmod 600 {private})\n")
    assert [p.name for p in (sides.parties / "44" / "keys").iterdir()] == [key_id]  # nothing new was made
    assert sides("register", str(registration))[0] == 0
    registry = sides.hub / "keys" / "parties.json"
    os.chmod(registry, 0o640)
    code, _out, err = sides("registered")
    assert code == 2 and err.endswith(f"(chmod 600 {registry})\n")
    os.chmod(registry, 0o600)
    assert sides("registered")[0] == 0
