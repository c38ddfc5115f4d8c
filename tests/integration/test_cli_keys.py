"""`roadx keys issue|revoke|list` on a data directory: a token shown once, listed never, refused once revoked."""

from __future__ import annotations

import json
import os
import stat

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
