"""The information service's credentials: issued once, kept as hashes, refused when wrong or revoked."""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import os
import stat

import pytest

from schemas.credentials import Credential, Credentials, check_party, credentials_file
from schemas.errors import ContractError, CredentialError

NOW = dt.datetime(2024, 6, 1, 8, 0, 0, tzinfo=dt.timezone.utc)
LATER = NOW + dt.timedelta(hours=1)


@pytest.fixture
def path(tmp_path):
    return credentials_file(tmp_path)


@pytest.fixture
def issued(path):
    """Credentials with one credential of party 44, and its token; its id holds a letter (a random
    id of digits alone, about one in forty, would have no capitals to try)."""
    while True:
        path.unlink(missing_ok=True)
        credentials = Credentials.load(path)
        credential, token = credentials.issue("44", NOW)
        if not token[4:12].isdigit():
            return credentials, credential, token


def test_a_credentials_error_is_a_contract_error():
    assert issubclass(CredentialError, ContractError)


def test_the_file_lives_under_the_data_directory(tmp_path):
    assert credentials_file(tmp_path) == tmp_path / "keys" / "api-credentials.json"


def test_an_issued_token_authenticates_as_its_party(issued, path):
    credentials, credential, token = issued
    assert credential == Credential(credential.id, "44", NOW, None)
    assert token.startswith(f"rdx_{credential.id}_") and len(token) == len("rdx_") + 8 + 1 + 43
    assert credentials.authenticate(token) == credential
    assert Credentials.load(path).authenticate(token) == credential  # as read back from the file


def test_each_issue_gives_a_new_id_and_secret(path):
    credentials = Credentials.load(path)
    (first, token1), (second, token2) = credentials.issue("44", NOW), credentials.issue("44", NOW)
    assert first.id != second.id and token1 != token2
    assert credentials.authenticate(token1) == first and credentials.authenticate(token2) == second
    assert [c.id for c in Credentials.load(path).entries()] == sorted([first.id, second.id])


def test_a_wrong_secret_is_refused(issued):
    credentials, credential, token = issued
    secret = token[len(f"rdx_{credential.id}_"):]
    flipped = ("A" if secret[0] != "A" else "B") + secret[1:]
    assert credentials.authenticate(f"rdx_{credential.id}_{flipped}") is None


def test_an_unknown_id_is_refused(issued):
    credentials, credential, token = issued
    other = "0" * 8 if credential.id != "0" * 8 else "1" * 8
    assert credentials.authenticate(token.replace(credential.id, other, 1)) is None


def secret(token: str, text: str) -> str:
    """``token`` with its secret replaced by ``text``, padded to a secret's length."""
    return token[:13] + text.ljust(43, "A")


@pytest.mark.parametrize("make", [
    lambda t: "",
    lambda t: t[len("rdx_"):],  # no prefix
    lambda t: "RDX_" + t[4:],
    lambda t: "Bearer " + t,
    lambda t: t + "\n",
    lambda t: " " + t,
    lambda t: t[:-1],
    lambda t: t + "A",
    lambda t: t * 1000,  # very long
    lambda t: "x" * 1_000_000,
    lambda t: secret(t, "' OR '1'='1' --"),  # SQL characters
    lambda t: secret(t, "../../etc/passwd"),  # path characters
    lambda t: secret(t, "%00%2e%2e%2f"),
    lambda t: t[:4] + "1' OR 1" + t[11:],  # SQL in the id
    lambda t: t[:-1] + "é",  # unicode
    lambda t: t[:-2] + "\u0663\u0664",  # Arabic-Indic digits
    lambda t: t[:4] + t[4:12].upper() + t[12:],  # the id in capitals
    lambda t: t[:4] + "\uff11" * 8 + t[12:],  # the id in full-width digits
    lambda t: t[:12] + "-" + t[13:],  # wrong separator
    lambda t: "rdx__" + t[13:] + "AAAAAAAA",
])
def test_malformed_tokens_are_refused(issued, make):
    credentials, _credential, token = issued
    bad = make(token)
    assert bad != token
    assert credentials.authenticate(bad) is None


@pytest.mark.parametrize("value", [None, 44, b"rdx_", ["rdx_"]])
def test_a_token_that_is_not_text_is_refused(issued, value):
    assert issued[0].authenticate(value) is None


def test_a_revoked_credential_is_refused_and_listed_with_its_time(issued, path):
    credentials, credential, token = issued
    revoked = credentials.revoke(credential.id, LATER)
    assert revoked == Credential(credential.id, "44", NOW, LATER)
    assert credentials.authenticate(token) is None
    assert Credentials.load(path).authenticate(token) is None
    assert Credentials.load(path).entries() == [revoked]


def test_revoking_twice_or_an_unknown_id_is_refused(issued, path):
    credentials, credential, _token = issued
    credentials.revoke(credential.id, LATER)
    with pytest.raises(CredentialError, match=f"{credential.id} was revoked already"):
        credentials.revoke(credential.id, LATER)
    with pytest.raises(CredentialError, match=f"no credential 'ffffffff' in {path}"):
        credentials.revoke("ffffffff", LATER)


def test_revoking_a_party_revokes_only_its_active_credentials(path):
    credentials = Credentials.load(path)
    (a, token_a), (b, token_b) = credentials.issue("44", NOW), credentials.issue("44", NOW)
    (other, token_other) = credentials.issue("11", NOW)
    assert sorted(c.id for c in credentials.revoke_party("44", LATER)) == sorted([a.id, b.id])
    assert credentials.authenticate(token_a) is None and credentials.authenticate(token_b) is None
    assert credentials.authenticate(token_other) == other
    with pytest.raises(CredentialError, match="party '44' has no active credential"):
        credentials.revoke_party("44", LATER)


def test_a_refused_revocation_changes_nothing(issued, path):
    credentials, credential, token = issued
    before = path.read_bytes()
    with pytest.raises(CredentialError):
        credentials.revoke_party("11", LATER)
    assert path.read_bytes() == before and credentials.authenticate(token) == credential


def test_the_token_is_stored_nowhere_only_its_sha256(issued, path):
    _credentials, credential, token = issued
    for file in path.parent.iterdir():
        assert token[13:] not in file.read_text("utf-8")
    stored = json.loads(path.read_text("utf-8"))
    assert stored["credentials"] == [{"id": credential.id, "party": "44", "created": NOW.isoformat(),
                                      "revoked": None, "sha256": hashlib.sha256(token.encode()).hexdigest()}]


def test_the_file_is_private_in_a_private_directory(issued, path):
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700
    assert [p.name for p in path.parent.iterdir() if p.name.endswith(".tmp")] == []


def test_an_existing_open_directory_is_made_private(path):
    path.parent.mkdir(mode=0o755)
    os.chmod(path.parent, 0o755)
    Credentials.load(path).issue("44", NOW)
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700


@pytest.mark.parametrize("mode", [0o640, 0o604, 0o620, 0o644])
def test_a_file_others_can_read_or_write_is_refused_naming_it(issued, path, mode):
    os.chmod(path, mode)
    with pytest.raises(CredentialError, match=f"{path} is readable or writable by group or others") as caught:
        Credentials.load(path)
    assert f"{mode:04o}" in str(caught.value)


@pytest.mark.parametrize("content", [
    b"",
    b"{not json",
    b"\xff\xfe\x00",
    b"[]",
    b'{"version": 2, "credentials": []}',
    b'{"version": 1}',
    b'{"version": 1, "credentials": [{"id": "abc"}]}',
    b'{"version": 1, "credentials": [{"id": "ABCDEF12", "party": "44", "created": "2024-06-01T08:00:00+00:00",'
    b' "revoked": null, "sha256": "' + b"0" * 64 + b'"}]}',
    b'{"version": 1, "credentials": [{"id": "abcdef12", "party": "44", "created": "yesterday",'
    b' "revoked": null, "sha256": "' + b"0" * 64 + b'"}]}',
    b'{"version": 1, "credentials": [{"id": "abcdef12", "party": "44", "created": "2024-06-01T08:00:00",'
    b' "revoked": null, "sha256": "' + b"0" * 64 + b'"}]}',
    b'{"version": 1, "credentials": [{"id": "abcdef12", "party": "44", "created": "2024-06-01T08:00:00+00:00",'
    b' "revoked": 5, "sha256": "' + b"0" * 64 + b'"}]}',
    b'{"version": 1, "credentials": [{"id": "abcdef12", "party": "../44", "created": "2024-06-01T08:00:00+00:00",'
    b' "revoked": null, "sha256": "' + b"0" * 64 + b'"}]}',
])
def test_a_file_that_does_not_parse_is_refused_naming_it(path, content):
    path.parent.mkdir(mode=0o700)
    path.write_bytes(content)
    os.chmod(path, 0o600)
    with pytest.raises(CredentialError, match=str(path)):
        Credentials.load(path)


def test_a_corrupt_file_is_not_overwritten_by_an_issue(path):
    path.parent.mkdir(mode=0o700)
    path.write_bytes(b"{not json")
    os.chmod(path, 0o600)
    with pytest.raises(CredentialError, match=str(path)):
        Credentials(path).issue("44", NOW)
    assert path.read_bytes() == b"{not json"


def test_a_duplicate_id_is_refused(issued, path):
    document = json.loads(path.read_text("utf-8"))
    document["credentials"] *= 2
    path.write_text(json.dumps(document), "utf-8")
    with pytest.raises(CredentialError, match=f"{path}: credential id .* appears twice"):
        Credentials.load(path)


def test_no_file_is_no_credentials(path):
    credentials = Credentials.load(path)
    assert credentials.entries() == [] and credentials.authenticate("rdx_" + "0" * 8 + "_" + "A" * 43) is None
    assert not path.exists() and credentials.reload_if_changed() is False


def test_reload_picks_up_a_revocation_made_elsewhere(issued, path):
    service, credential, token = issued
    assert service.reload_if_changed() is False  # its own write is what it holds
    admin = Credentials.load(path)
    admin.revoke(credential.id, LATER)
    assert service.authenticate(token) == credential  # not read yet
    assert service.reload_if_changed() is True
    assert service.authenticate(token) is None
    assert service.reload_if_changed() is False


def test_reload_picks_up_an_issue_made_elsewhere_and_a_removed_file(issued, path):
    service, _credential, _token = issued
    new, token = Credentials.load(path).issue("11", NOW)
    assert service.authenticate(token) is None
    assert service.reload_if_changed() is True and service.authenticate(token) == new
    path.unlink()
    assert service.reload_if_changed() is True and service.authenticate(token) is None


def test_a_failed_reload_keeps_what_was_held(issued, path):
    service, credential, token = issued
    path.write_bytes(b"{half written")
    with pytest.raises(CredentialError, match=str(path)):
        service.reload_if_changed()
    assert service.authenticate(token) == credential


def test_issues_by_two_instances_both_survive(path):
    first, second = Credentials.load(path), Credentials.load(path)
    a, token_a = first.issue("44", NOW)
    b, token_b = second.issue("11", NOW)  # second re-reads under the lock: a is kept
    stored = Credentials.load(path)
    assert stored.authenticate(token_a) == a and stored.authenticate(token_b) == b


def test_an_unknown_party_is_refused_naming_it_and_the_known_ones(path):
    with pytest.raises(CredentialError, match=r"unknown party '99': the known parties are 11, 44"):
        Credentials.load(path).issue("99", NOW, ("11", "44"))
    with pytest.raises(CredentialError, match="unknown party"):
        check_party("4", ("11", "44"))
    assert not path.exists()
    check_party("44", ("11", "44"))


@pytest.mark.parametrize("party", ["", "4/4", "../44", "44\n", "广东", "x" * 33])
def test_a_party_that_is_no_code_is_refused(path, party):
    with pytest.raises(CredentialError, match="is not a party code"):
        Credentials.load(path).issue(party, NOW)
    assert not path.exists()


def test_times_are_kept_in_utc_to_the_second(path):
    east8 = dt.timezone(dt.timedelta(hours=8))
    credential, _token = Credentials.load(path).issue("44", dt.datetime(2024, 6, 1, 16, 0, 0, 999, tzinfo=east8))
    assert credential.created == NOW and credential.created.utcoffset() == dt.timedelta(0)
    assert Credentials.load(path).entries()[0].created == NOW


def test_a_directory_or_fifo_in_place_of_the_file_is_refused(path):
    path.mkdir(parents=True)
    with pytest.raises(CredentialError, match=f"{path} is not a regular file"):
        Credentials.load(path)
    path.rmdir()
    os.mkfifo(path, 0o600)
    with pytest.raises(CredentialError, match=f"{path} is not a regular file"):
        Credentials.load(path)
