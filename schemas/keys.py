"""Keys that belong to their owner: a party's side, and what the hub registers of it.

A party (a province, a navigation administration …) makes its own keys on its own side
(``roadx keys init --party 44``), under ``<parties-dir>/<P>/keys/<key-id>/``:

- ``sm2.key``: its SM2 private key (PKCS#8 PEM), which signs its submissions' manifests and
  its licences' seals and never leaves that directory;
- ``event.secret``: 32 random bytes, its HMAC-SM3 key for single events (``schemas.signing``);
- ``registration.json``: what the hub needs, handed to it once: party, key id, validity, the
  public key and the event secret (``roadx keys register FILE`` on the hub's side).

Every file there is mode 0600 in 0700 directories and refused when others may read it. A key
id is ``<party>-<8 hex digits of the SM3 of the public key>``. Rotating is making a new key
set: the newest whose validity has begun signs, and the hub accepts every registered key that
is neither revoked nor expired, so old and new overlap until the old one is revoked.

The hub keeps, under ``<data-dir>/keys/``, its own SM2 key pair (``hub-sm2.key``, which signs
receipts; the public half as ``hub.pem``) and ``parties.json``: the registered keys, each with
its validity and revocation. Nothing of one party's keys is derived from anything the hub
holds: the hub stores the public keys and secrets it was given, and makes none.
"""

from __future__ import annotations

import base64
import datetime as dt
import json
import re
import secrets
from collections.abc import Collection
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from . import sm2
from .errors import KeyStoreError, ProvenanceError
from .private_files import PrivateRegistry, locked, make_private_directory, read_private, write_private

SECRET_BYTES = 32
FORMAT_VERSION = 1
DEFAULT_VALID_DAYS = 730
_KEY_ID = re.compile(r"[0-9A-Za-z_-]{1,32}-[0-9a-f]{8}")
_PARTY = re.compile(r"[0-9A-Za-z_-]{1,32}")
_REGISTRATION_FIELDS = {"party", "key_id", "not_before", "not_after", "public_key", "event_secret"}


def moment(text: Any, what: str) -> dt.datetime:
    """An ISO 8601 time with its UTC offset; anything else raises ``ValueError`` naming ``what``."""
    if not isinstance(text, str):
        raise ValueError(f"{what} {text!r} is not a time")
    value = dt.datetime.fromisoformat(text)
    if value.tzinfo is None:
        raise ValueError(f"{what} {text!r} has no UTC offset")
    return value


def utc(value: dt.datetime) -> dt.datetime:
    return value.astimezone(dt.timezone.utc).replace(microsecond=0)


@dataclass(frozen=True)
class PartyKey:
    """One key set of a party, as its own side holds it."""

    party: str
    key_id: str
    not_before: dt.datetime
    not_after: dt.datetime
    private: sm2.PrivateKey
    event_secret: bytes

    def registration(self) -> dict[str, str]:
        """What the hub registers: everything but the private key."""
        return {"party": self.party, "key_id": self.key_id, "not_before": self.not_before.isoformat(),
                "not_after": self.not_after.isoformat(),
                "public_key": sm2.public_pem(self.private.public_key()).decode("ascii"),
                "event_secret": base64.b64encode(self.event_secret).decode("ascii")}

    def valid_at(self, at: dt.datetime) -> bool:
        return self.not_before <= at < self.not_after


class PartyKeys:
    """A party's own key sets, in ``<parties-dir>/<party>``."""

    def __init__(self, directory: Path, party: str) -> None:
        if not _PARTY.fullmatch(party):
            raise KeyStoreError(f"party {party!r} is not a party code (letters, digits, '-' or '_')")
        self.directory, self.party = directory, party
        self._keys: list[PartyKey] | None = None

    @property
    def keys_directory(self) -> Path:
        return self.directory / "keys"

    @property
    def hub_public_file(self) -> Path:
        """The hub's public key, as the party received it: what its receipts are verified with."""
        return self.directory / "hub.pem"

    def init(self, now: dt.datetime, valid_days: int = DEFAULT_VALID_DAYS,
             not_before: dt.datetime | None = None) -> PartyKey:
        """Make a new key set, valid from ``not_before`` (default ``now``) for ``valid_days``."""
        if valid_days <= 0:
            raise KeyStoreError(f"a key must be valid for at least one day, not {valid_days}")
        private = sm2.generate()
        start = utc(not_before or now)
        key = PartyKey(self.party, f"{self.party}-{sm2.fingerprint(private.public_key())}", start,
                       start + dt.timedelta(days=valid_days), private, secrets.token_bytes(SECRET_BYTES))
        where = self.keys_directory / key.key_id
        make_private_directory(self.directory, KeyStoreError)
        write_private(where / "sm2.key", sm2.private_pem(private), KeyStoreError)
        write_private(where / "event.secret", key.event_secret, KeyStoreError)
        write_private(where / "registration.json",
                      (json.dumps(key.registration(), indent=1) + "\n").encode("utf-8"), KeyStoreError)
        self._keys = None
        return key

    def keys(self) -> list[PartyKey]:
        """Every key set of the party, oldest first."""
        if self._keys is None:
            found = []
            if self.keys_directory.is_dir():
                for where in sorted(self.keys_directory.iterdir()):
                    if where.is_dir() and _KEY_ID.fullmatch(where.name):
                        found.append(self._load(where))
            self._keys = sorted(found, key=lambda k: (k.not_before, k.key_id))
        return self._keys

    def current(self, now: dt.datetime) -> PartyKey:
        """The key set that signs now: the newest whose validity has begun and not ended."""
        valid = [key for key in self.keys() if key.valid_at(now)]
        if not valid:
            raise KeyStoreError(f"party {self.party} has no key valid at {utc(now).isoformat()} in "
                                f"{self.keys_directory}: make one with roadx keys init --party {self.party}")
        return valid[-1]

    def hub_public(self) -> sm2.PublicKey:
        try:
            pem = self.hub_public_file.read_bytes()
        except FileNotFoundError:
            raise KeyStoreError(f"party {self.party} has not got the hub's public key: put it in "
                                f"{self.hub_public_file} (roadx keys hub-public prints it)") from None
        except OSError as exc:
            raise KeyStoreError(f"cannot read {self.hub_public_file}: {exc.strerror}") from None
        return sm2.load_public(pem, str(self.hub_public_file))

    def set_hub_public(self, pem: bytes) -> None:
        sm2.load_public(pem, "the hub's public key")
        make_private_directory(self.directory, KeyStoreError)
        write_private(self.hub_public_file, pem, KeyStoreError)

    def _load(self, where: Path) -> PartyKey:
        pem = read_private(where / "sm2.key", KeyStoreError)
        secret = read_private(where / "event.secret", KeyStoreError)
        registration = read_private(where / "registration.json", KeyStoreError)
        if pem is None or secret is None or registration is None:
            raise KeyStoreError(f"{where} is not a whole key set: it needs sm2.key, event.secret and registration.json")
        try:
            entry = _registration(json.loads(registration))
        except (ValueError, TypeError) as exc:
            raise KeyStoreError(f"{where / 'registration.json'} is malformed: {exc}") from None
        private = sm2.load_private(pem, str(where / "sm2.key"))
        if sm2.public_pem(private.public_key()) != entry.public_pem or secret != entry.event_secret \
                or entry.party != self.party or entry.key_id != where.name:
            raise KeyStoreError(f"{where}: sm2.key, event.secret and registration.json do not belong together")
        return PartyKey(self.party, entry.key_id, entry.not_before, entry.not_after, private, secret)


@dataclass(frozen=True)
class RegisteredKey:
    """A party's key as the hub registered it: its public key and event secret, never its private key."""

    party: str
    key_id: str
    not_before: dt.datetime
    not_after: dt.datetime
    public_pem: bytes
    event_secret: bytes
    registered: dt.datetime | None = None
    revoked: dt.datetime | None = None

    def usable_at(self, at: dt.datetime) -> bool:
        return self.not_before <= at < self.not_after and (self.revoked is None or at < self.revoked)

    def listing(self) -> dict[str, str | None]:
        return {"party": self.party, "key_id": self.key_id, "not_before": self.not_before.isoformat(),
                "not_after": self.not_after.isoformat(),
                "registered": self.registered.isoformat() if self.registered else None,
                "revoked": self.revoked.isoformat() if self.revoked else None}


class HubKeys(PrivateRegistry):
    """The hub's own SM2 key pair and the parties' registered keys, in ``<data-dir>/keys``
    (the registry: ``parties.json``, key id -> ``RegisteredKey``)."""

    error = KeyStoreError

    def __init__(self, directory: Path) -> None:
        super().__init__(directory / "parties.json")
        self.directory = directory
        self._publics: dict[str, sm2.PublicKey] = {}
        self._hub: tuple[str, sm2.PrivateKey] | None = None

    @classmethod
    def load(cls, directory: Path) -> HubKeys:
        keys = cls(directory)
        keys._read()
        return keys

    @property
    def registry_file(self) -> Path:
        return self.path

    @property
    def hub_private_file(self) -> Path:
        return self.directory / "hub-sm2.key"

    @property
    def hub_public_file(self) -> Path:
        return self.directory / "hub.pem"

    # -- the hub's own key ---------------------------------------------------------------
    def hub_key(self) -> tuple[str, sm2.PrivateKey]:
        """(key id, private key) of the hub's SM2 key, made the first time it is asked for."""
        if self._hub is None:
            pem = read_private(self.hub_private_file, KeyStoreError)
            if pem is None:
                write_private(self.hub_private_file, sm2.private_pem(sm2.generate()), KeyStoreError, keep_existing=True)
                pem = read_private(self.hub_private_file, KeyStoreError) or b""
            private = sm2.load_private(pem, str(self.hub_private_file))
            public = sm2.public_pem(private.public_key())
            if not self.hub_public_file.exists() or self.hub_public_file.read_bytes() != public:
                self.hub_public_file.write_bytes(public)
            self._hub = (f"hub-{sm2.fingerprint(private.public_key())}", private)
        return self._hub

    def hub_public_pem(self) -> bytes:
        return sm2.public_pem(self.hub_key()[1].public_key())

    # -- the parties' keys ---------------------------------------------------------------
    def entries(self) -> list[RegisteredKey]:
        return sorted(self._entries.values(), key=lambda k: (k.party, k.not_before, k.key_id))

    def register(self, registration: Any, now: dt.datetime, parties: Collection[str]) -> RegisteredKey:
        """Register a party's key from its ``registration.json`` content; a key id registered
        already, a party not in ``parties`` or a malformed registration is refused."""
        try:
            entry = _registration(registration)
        except (ValueError, TypeError) as exc:
            raise KeyStoreError(f"the registration is malformed: {exc}") from None
        if entry.party not in parties:
            raise KeyStoreError(f"unknown party {entry.party!r}: the known parties are {', '.join(parties)}")
        sm2.load_public(entry.public_pem, f"the public key of {entry.key_id}")
        with self._changing():
            if entry.key_id in self._entries:
                raise KeyStoreError(f"key {entry.key_id} is registered already")
            entry = RegisteredKey(entry.party, entry.key_id, entry.not_before, entry.not_after,
                                  entry.public_pem, entry.event_secret, utc(now))
            self._entries[entry.key_id] = entry
        return entry

    def revoke(self, key_id: str, now: dt.datetime) -> RegisteredKey:
        with self._changing():
            entry = self._entries.get(key_id)
            if entry is None:
                raise KeyStoreError(f"no key {key_id!r} is registered in {self.registry_file}")
            if entry.revoked is not None:
                raise KeyStoreError(f"key {key_id} was revoked already, at {entry.revoked.isoformat()}")
            entry = RegisteredKey(entry.party, entry.key_id, entry.not_before, entry.not_after, entry.public_pem,
                                  entry.event_secret, entry.registered, utc(now))
            self._entries[key_id] = entry
        return entry

    def parties(self) -> frozenset[str]:
        return frozenset(entry.party for entry in self._entries.values())

    def event_secrets(self, party: str, at: dt.datetime) -> tuple[bytes, ...]:
        """The event secrets of ``party`` usable at ``at``, newest first (two while keys overlap)."""
        usable = [k for k in self._entries.values() if k.party == party and k.usable_at(at)]
        return tuple(k.event_secret for k in sorted(usable, key=lambda k: k.not_before, reverse=True))

    def public_key(self, party: str, key_id: str, at: dt.datetime) -> sm2.PublicKey:
        """The public key ``key_id`` of ``party`` if usable at ``at``; else ``ProvenanceError`` with
        rule ``unknown_key``, ``other_party_key``, ``revoked_key`` or ``expired_key``."""
        entry = self._entries.get(key_id)
        if entry is None:
            raise ProvenanceError("unknown_key", f"key {key_id!r} is not registered at the hub")
        if entry.party != party:
            raise ProvenanceError("other_party_key", f"key {key_id} belongs to party {entry.party}, not {party}")
        if entry.revoked is not None and at >= entry.revoked:
            raise ProvenanceError("revoked_key", f"key {key_id} of {party} was revoked at {entry.revoked.isoformat()}")
        if not entry.not_before <= at < entry.not_after:
            raise ProvenanceError("expired_key", f"key {key_id} of {party} is valid from {entry.not_before.isoformat()} "
                                                 f"to {entry.not_after.isoformat()}, not at {utc(at).isoformat()}")
        public = self._publics.get(key_id)
        if public is None:
            public = self._publics[key_id] = sm2.load_public(entry.public_pem, f"registered key {key_id}")
        return public

    def _parse(self, data: bytes) -> dict[str, RegisteredKey]:
        return _parse_registry(data, self.path)

    def _document(self) -> dict[str, Any]:
        return {"version": FORMAT_VERSION, "keys": [
            {**entry.listing(), "public_key": entry.public_pem.decode("ascii"),
             "event_secret": base64.b64encode(entry.event_secret).decode("ascii")} for entry in self.entries()]}


def _registration(item: Any) -> RegisteredKey:
    if not isinstance(item, dict) or not _REGISTRATION_FIELDS <= set(item):
        raise ValueError(f"expected the fields {', '.join(sorted(_REGISTRATION_FIELDS))}")
    if not isinstance(item["party"], str) or not _PARTY.fullmatch(item["party"]):
        raise ValueError(f"party {item['party']!r} is not a party code")
    if not isinstance(item["key_id"], str) or not _KEY_ID.fullmatch(item["key_id"]) \
            or not item["key_id"].startswith(item["party"] + "-"):
        raise ValueError(f"key id {item['key_id']!r} is not <party>-<8 hex digits> of party {item['party']}")
    secret = base64.b64decode(str(item["event_secret"]), validate=True)
    if len(secret) < 16:
        raise ValueError("the event secret holds fewer than 16 bytes")
    if not isinstance(item["public_key"], str):
        raise ValueError("public_key is not PEM text")
    not_before, not_after = moment(item["not_before"], "not_before"), moment(item["not_after"], "not_after")
    if not_after <= not_before:
        raise ValueError(f"not_after {item['not_after']} is not after not_before {item['not_before']}")
    registered = moment(item["registered"], "registered") if item.get("registered") else None
    revoked = moment(item["revoked"], "revoked") if item.get("revoked") else None
    return RegisteredKey(item["party"], item["key_id"], not_before, not_after, item["public_key"].encode("ascii"),
                         secret, registered, revoked)


def _parse_registry(data: bytes, path: Path) -> dict[str, RegisteredKey]:
    try:
        document = json.loads(data)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise KeyStoreError(f"{path} is not a key registry: it does not parse as JSON ({exc})") from None
    if not isinstance(document, dict) or document.get("version") != FORMAT_VERSION \
            or not isinstance(document.get("keys"), list):
        raise KeyStoreError(f'{path} is not a key registry: expected {{"version": {FORMAT_VERSION}, "keys": [...]}}')
    entries: dict[str, RegisteredKey] = {}
    for number, item in enumerate(document["keys"], start=1):
        try:
            entry = _registration(item)
        except (ValueError, TypeError) as exc:
            raise KeyStoreError(f"{path}: key {number} is malformed: {exc}") from None
        if entry.key_id in entries:
            raise KeyStoreError(f"{path}: key {entry.key_id} appears twice")
        entries[entry.key_id] = entry
    return entries


def provision(party_keys: PartyKeys, hub: HubKeys, now: dt.datetime, parties: Collection[str]) -> PartyKey:
    """The embedded stack's convenience (``ROADX_AUTO_KEYS``): make a party's keys on its side
    when it has none valid now, register them at the hub, and hand the party the hub's public key.

    A real deployment runs the same steps by hand, each on its own side: ``roadx keys init`` at
    the party, ``roadx keys register`` at the hub, ``roadx keys hub-public`` to the party.
    """
    with locked(party_keys.directory / ".provision", KeyStoreError):
        party_keys._keys = None
        valid = [key for key in party_keys.keys() if key.valid_at(now)]
        key = valid[-1] if valid else party_keys.init(now)
        hub.reload_if_changed()
        if key.key_id not in {entry.key_id for entry in hub.entries()}:
            try:
                hub.register(key.registration(), now, parties)
            except KeyStoreError:
                hub.reload_if_changed()
                if key.key_id not in {entry.key_id for entry in hub.entries()}:
                    raise
        if not party_keys.hub_public_file.exists():
            party_keys.set_hub_public(hub.hub_public_pem())
        return key
