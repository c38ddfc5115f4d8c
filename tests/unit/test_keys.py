"""Keys that belong to their owner (``schemas.keys``): a party's side, the hub's registry, pure file logic."""

from __future__ import annotations

import base64
import datetime as dt
import json
import os
import re
import stat
from pathlib import Path

import pytest

from schemas import sm2
from schemas.errors import KeyStoreError, ProvenanceError
from schemas.keys import HubKeys, PartyKeys, provision

NOW = dt.datetime(2025, 7, 1, 8, 0, tzinfo=dt.timezone.utc)
DAY = dt.timedelta(days=1)
PARTIES = ("11", "44")


@pytest.fixture
def hub(tmp_path) -> HubKeys:
    return HubKeys.load(tmp_path / "hub" / "keys")


def party(tmp_path: Path, code: str = "44") -> PartyKeys:
    return PartyKeys(tmp_path / "parties" / code, code)


def registered(hub: HubKeys, keys: PartyKeys, at: dt.datetime = NOW, **init) -> str:
    key = keys.init(at, **init)
    hub.register(key.registration(), at, PARTIES)
    return key.key_id


# -- a party's side ---------------------------------------------------------------------------
def test_a_key_set_is_three_private_files_and_its_registration_holds_no_private_key(tmp_path):
    keys = party(tmp_path)
    key = keys.init(NOW, valid_days=10)
    where = keys.keys_directory / key.key_id
    assert key.key_id == f"44-{sm2.fingerprint(key.private.public_key())}"
    assert sorted(p.name for p in where.iterdir()) == ["event.secret", "registration.json", "sm2.key"]
    assert {stat.S_IMODE(p.stat().st_mode) for p in where.iterdir()} == {0o600}
    assert stat.S_IMODE(where.stat().st_mode) == 0o700 and stat.S_IMODE(keys.directory.stat().st_mode) == 0o700
    registration = json.loads((where / "registration.json").read_text("utf-8"))
    assert set(registration) == {"party", "key_id", "not_before", "not_after", "public_key", "event_secret"}
    assert "PRIVATE" not in json.dumps(registration)
    assert base64.b64decode(registration["event_secret"]) == key.event_secret == (where / "event.secret").read_bytes()
    assert (key.not_before, key.not_after) == (NOW, NOW + 10 * DAY)


def test_the_newest_key_whose_validity_has_begun_signs_and_none_is_a_clear_error(tmp_path):
    keys = party(tmp_path)
    with pytest.raises(KeyStoreError, match="party 44 has no key valid at .*roadx keys init --party 44"):
        keys.current(NOW)
    old = keys.init(NOW - 10 * DAY)
    new = keys.init(NOW, not_before=NOW + DAY)  # planned ahead
    assert keys.current(NOW).key_id == old.key_id
    assert keys.current(NOW + DAY).key_id == new.key_id
    assert [k.key_id for k in PartyKeys(keys.directory, "44").keys()] == [old.key_id, new.key_id]


def test_a_key_file_others_may_read_is_refused_with_the_chmod_that_fixes_it(tmp_path):
    keys = party(tmp_path)
    key = keys.init(NOW)
    private = keys.keys_directory / key.key_id / "sm2.key"
    os.chmod(private, 0o640)
    with pytest.raises(KeyStoreError, match=rf"mode 0640\): make it 0600 \(chmod 600 {private}\)"):
        PartyKeys(keys.directory, "44").keys()
    os.chmod(private, 0o600)
    assert PartyKeys(keys.directory, "44").current(NOW).key_id == key.key_id


def test_a_key_set_whose_files_do_not_belong_together_is_refused(tmp_path):
    keys = party(tmp_path)
    key = keys.init(NOW)
    secret = keys.keys_directory / key.key_id / "event.secret"
    secret.write_bytes(os.urandom(32))
    with pytest.raises(KeyStoreError, match="do not belong together"):
        PartyKeys(keys.directory, "44").keys()
    secret.unlink()
    with pytest.raises(KeyStoreError, match="is not a whole key set"):
        PartyKeys(keys.directory, "44").keys()


@pytest.mark.parametrize("code", ["", "44/..", "a" * 33, "中"])
def test_a_party_code_that_is_no_code_is_refused(tmp_path, code):
    with pytest.raises(KeyStoreError, match="is not a party code"):
        PartyKeys(tmp_path, code)


def test_a_key_valid_for_no_day_is_refused(tmp_path):
    with pytest.raises(KeyStoreError, match="at least one day"):
        party(tmp_path).init(NOW, valid_days=0)


# -- the hub's registry -----------------------------------------------------------------------
def _registration(tmp_path, code="44"):
    return party(tmp_path, code).init(NOW).registration()


@pytest.mark.parametrize("change, message", [
    (lambda r: r.pop("public_key"), "expected the fields"),
    (lambda r: r.update(party="4/4"), "is not a party code"),
    (lambda r: r.update(key_id="11-0123abcd"), "is not <party>-<8 hex digits> of party 44"),
    (lambda r: r.update(key_id="44-XYZ"), "is not <party>-<8 hex digits>"),
    (lambda r: r.update(event_secret=base64.b64encode(b"short").decode()), "fewer than 16 bytes"),
    (lambda r: r.update(event_secret="not base64!"), "malformed"),
    (lambda r: r.update(not_before="2025-07-01T08:00:00"), "has no UTC offset"),
    (lambda r: r.update(not_after=r["not_before"]), "is not after not_before"),
    (lambda r: r.update(public_key=12), "is not PEM text"),
    (lambda r: r.update(public_key="-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----\n"),
     "is not an SM2 public key"),
])
def test_a_malformed_registration_is_refused_and_nothing_is_written(tmp_path, hub, change, message):
    registration = _registration(tmp_path)
    change(registration)
    with pytest.raises(KeyStoreError, match=message):
        hub.register(registration, NOW, PARTIES)
    assert not hub.registry_file.exists() and hub.entries() == []


def test_a_registration_that_is_no_object_is_refused(hub):
    with pytest.raises(KeyStoreError, match="the registration is malformed"):
        hub.register(["44"], NOW, PARTIES)


def test_an_unknown_party_and_a_key_registered_already_are_refused(tmp_path, hub):
    with pytest.raises(KeyStoreError, match="unknown party '44': the known parties are 11"):
        hub.register(_registration(tmp_path), NOW, ("11",))
    registration = _registration(tmp_path)
    first = hub.register(registration, NOW, PARTIES)
    with pytest.raises(KeyStoreError, match=f"key {first.key_id} is registered already"):
        hub.register(registration, NOW + DAY, PARTIES)
    assert [(k.key_id, k.registered) for k in HubKeys.load(hub.directory).entries()] == [(first.key_id, NOW)]


def test_the_registry_keeps_public_keys_and_secrets_and_is_private(tmp_path, hub):
    key = party(tmp_path).init(NOW)
    hub.register(key.registration(), NOW, PARTIES)
    text = hub.registry_file.read_text("utf-8")
    public = sm2.public_pem(key.private.public_key()).decode()
    assert "PRIVATE KEY" not in text and json.loads(text)["keys"][0]["public_key"] == public
    assert stat.S_IMODE(hub.registry_file.stat().st_mode) == 0o600
    os.chmod(hub.registry_file, 0o644)
    with pytest.raises(KeyStoreError, match=rf"chmod 600 {hub.registry_file}"):
        HubKeys.load(hub.directory)


@pytest.mark.parametrize("content, message", [
    (b"{", "does not parse as JSON"),
    (b'{"version": 2, "keys": []}', 'expected {"version": 1'),
    (b'{"version": 1, "keys": {}}', 'expected {"version": 1'),
    (b'{"version": 1, "keys": [{"party": "44"}]}', "key 1 is malformed: expected the fields"),
])
def test_a_malformed_registry_is_refused_naming_it(hub, content, message):
    hub.directory.mkdir(parents=True)
    hub.registry_file.write_bytes(content)
    os.chmod(hub.registry_file, 0o600)
    with pytest.raises(KeyStoreError, match=re.escape(message)) as refused:
        HubKeys.load(hub.directory)
    assert str(refused.value).startswith(f"{hub.registry_file}")


def test_a_registry_naming_one_key_twice_is_refused(tmp_path, hub):
    registered(hub, party(tmp_path))
    document = json.loads(hub.registry_file.read_text("utf-8"))
    document["keys"].append(document["keys"][0])
    hub.registry_file.write_text(json.dumps(document), "utf-8")
    with pytest.raises(KeyStoreError, match=f"key {document['keys'][0]['key_id']} appears twice"):
        HubKeys.load(hub.directory)


def test_revoking_twice_or_a_key_not_registered_is_refused(tmp_path, hub):
    key_id = registered(hub, party(tmp_path))
    revoked = hub.revoke(key_id, NOW + DAY)
    assert revoked.revoked == NOW + DAY
    already = f"key {key_id} was revoked already, at {(NOW + DAY).isoformat()}"
    with pytest.raises(KeyStoreError, match=re.escape(already)):
        hub.revoke(key_id, NOW + 2 * DAY)
    with pytest.raises(KeyStoreError, match="no key '44-00000000' is registered"):
        hub.revoke("44-00000000", NOW)
    assert HubKeys.load(hub.directory).entries()[0].revoked == NOW + DAY


def test_a_public_key_is_given_only_for_its_own_party_within_its_validity_and_before_revocation(tmp_path, hub):
    keys = party(tmp_path)
    key = keys.init(NOW, valid_days=30)
    hub.register(key.registration(), NOW, PARTIES)
    public = hub.public_key("44", key.key_id, NOW + DAY)
    assert sm2.verify(public, sm2.sign(key.private, b"manifest"), b"manifest")

    def rule(party_code: str, key_id: str, at: dt.datetime) -> str:
        with pytest.raises(ProvenanceError) as refused:
            hub.public_key(party_code, key_id, at)
        return refused.value.rule

    assert rule("44", "44-00000000", NOW) == "unknown_key"
    assert rule("11", key.key_id, NOW) == "other_party_key"
    assert rule("44", key.key_id, NOW - DAY) == "expired_key"  # before its validity
    assert rule("44", key.key_id, NOW + 30 * DAY) == "expired_key"
    hub.revoke(key.key_id, NOW + 2 * DAY)
    assert hub.public_key("44", key.key_id, NOW + DAY) is not None  # signed before it was withdrawn
    assert rule("44", key.key_id, NOW + 2 * DAY) == "revoked_key"


def test_overlapping_keys_give_their_event_secrets_newest_first_until_one_is_revoked_or_expires(tmp_path, hub):
    keys, other = party(tmp_path), party(tmp_path, "11")
    old = keys.init(NOW - 10 * DAY, valid_days=20)
    new = keys.init(NOW, not_before=NOW + DAY)
    for key in (new, old, other.init(NOW)):  # registered in any order
        hub.register(key.registration(), NOW, PARTIES)
    assert hub.event_secrets("44", NOW) == (old.event_secret,)
    assert hub.event_secrets("44", NOW + DAY) == (new.event_secret, old.event_secret)
    assert hub.event_secrets("44", NOW + 10 * DAY) == (new.event_secret,)  # the old one expired
    hub.revoke(new.key_id, NOW + 2 * DAY)
    assert hub.event_secrets("44", NOW + 2 * DAY) == (old.event_secret,)
    assert hub.event_secrets("12", NOW) == ()
    assert hub.parties() == {"11", "44"}


def test_a_change_made_by_another_process_is_read_on_reload_only_when_the_file_changed(tmp_path, hub):
    reader = HubKeys.load(hub.directory)
    assert reader.reload_if_changed() is False
    key_id = registered(hub, party(tmp_path))
    assert reader.reload_if_changed() is True and [k.key_id for k in reader.entries()] == [key_id]
    assert reader.reload_if_changed() is False
    hub.revoke(key_id, NOW)
    assert reader.reload_if_changed() is True and reader.entries()[0].revoked == NOW


def test_the_hub_key_pair_is_made_once_and_its_public_half_kept_beside_it(hub):
    key_id, private = hub.hub_key()
    assert key_id.startswith("hub-") and stat.S_IMODE(hub.hub_private_file.stat().st_mode) == 0o600
    again = HubKeys.load(hub.directory)
    assert again.hub_key()[0] == key_id and again.hub_public_pem() == hub.hub_public_file.read_bytes()
    assert sm2.verify(sm2.load_public(hub.hub_public_file.read_bytes(), "hub.pem"),
                      sm2.sign(private, b"receipt"), b"receipt")


def test_provisioning_makes_a_partys_keys_on_its_side_registers_them_once_and_gives_it_the_hub_key(tmp_path, hub):
    keys = party(tmp_path)
    key = provision(keys, hub, NOW, PARTIES)
    again = provision(PartyKeys(keys.directory, "44"), HubKeys.load(hub.directory), NOW + DAY, PARTIES)
    assert again.key_id == key.key_id and [k.key_id for k in HubKeys.load(hub.directory).entries()] == [key.key_id]
    assert keys.hub_public() is not None and keys.hub_public_file.read_bytes() == hub.hub_public_pem()
    # The hub's directory holds its own private key and no other.
    private = [p.name for p in hub.directory.iterdir() if p.is_file() and b"PRIVATE KEY" in p.read_bytes()]
    assert private == ["hub-sm2.key"]
    # No party key is derived from the hub: two parties' keys and secrets have nothing in common.
    other = provision(party(tmp_path, "11"), hub, NOW, PARTIES)
    assert other.event_secret != key.event_secret and other.key_id[3:] != key.key_id[3:]
