"""Per-party credentials of the hub's information service: each token shown once, only its hash kept.

A token is ``rdx_<id>_<secret>``: ``id`` names the credential (8 random hex digits) and
``secret`` is ``secrets.token_urlsafe(32)``. For each credential the hub keeps its id, its
party, when it was created and revoked, and ``sha256(token)``; the token itself is printed
once, when issued, and stored nowhere. A token carries 256 random bits, so one plain SHA-256
is enough (there is no guessable password to stretch), and checking one costs a dictionary
lookup by id and one hash compared in constant time: cheap enough for every request.

The credentials are one JSON file, ``<data_dir>/keys/api-credentials.json``, written whole to a
temporary file and renamed into place, mode 0600 in a 0700 directory; a file others can read,
or that does not parse, is refused naming it. Issuing and revoking hold an exclusive lock on
``<file>.lock`` while they re-read, change and write the file, so two at once lose nothing.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import json
import re
import secrets
from collections.abc import Collection
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .errors import CredentialError
from .private_files import PrivateRegistry

TOKEN_PREFIX = "rdx_"
ID_HEX_DIGITS = 8
FORMAT_VERSION = 1
_SECRET_BYTES = 32
_SECRET_CHARS = 43  # secrets.token_urlsafe(32): 32 bytes in unpadded URL-safe base64
_TOKEN = re.compile(rf"{TOKEN_PREFIX}(?P<id>[0-9a-f]{{{ID_HEX_DIGITS}}})_[A-Za-z0-9_-]{{{_SECRET_CHARS}}}")
_TOKEN_LENGTH = len(TOKEN_PREFIX) + ID_HEX_DIGITS + 1 + _SECRET_CHARS
_ID = re.compile(rf"[0-9a-f]{{{ID_HEX_DIGITS}}}")
_PARTY = re.compile(r"[0-9A-Za-z_-]{1,32}")
_DIGEST = re.compile(r"[0-9a-f]{64}")
_FIELDS = {"id", "party", "created", "revoked", "sha256"}


def credentials_file(data_dir: Path) -> Path:
    """Where the hub of ``data_dir`` keeps its API credentials."""
    return data_dir / "keys" / "api-credentials.json"


def check_party(party: str, parties: Collection[str]) -> None:
    """Refuse a party that is not one of ``parties`` (the settings' province list), naming both."""
    if party not in parties:
        raise CredentialError(f"unknown party {party!r}: the known parties are {', '.join(parties)}")


@dataclass(frozen=True)
class Credential:
    """One party's credential, as listed: never its token, nor the token's hash."""

    id: str
    party: str
    created: dt.datetime
    revoked: dt.datetime | None = None

    @property
    def active(self) -> bool:
        return self.revoked is None

    def as_dict(self) -> dict[str, str | None]:
        return {"id": self.id, "party": self.party, "created": self.created.isoformat(),
                "revoked": self.revoked.isoformat() if self.revoked else None}


class Credentials(PrivateRegistry):
    """The credentials of one file: loaded, checked against tokens, issued and revoked.
    Entries: id -> (credential, sha256 of its token)."""

    error = CredentialError

    @classmethod
    def load(cls, path: Path) -> Credentials:
        """The credentials of ``path``; none when the file does not exist yet."""
        credentials = cls(path)
        credentials._read()
        return credentials

    def entries(self) -> list[Credential]:
        """Every credential, revoked ones too, oldest first."""
        return sorted((credential for credential, _ in self._entries.values()), key=lambda c: (c.created, c.id))

    def authenticate(self, token: str) -> Credential | None:
        """The active credential ``token`` belongs to; None for a malformed, unknown, wrong or revoked token."""
        if not isinstance(token, str) or len(token) != _TOKEN_LENGTH or (match := _TOKEN.fullmatch(token)) is None:
            return None
        entry = self._entries.get(match["id"])
        if entry is None:
            return None
        credential, digest = entry
        if not hmac.compare_digest(_digest(token), digest) or not credential.active:
            return None
        return credential

    def issue(self, party: str, now: dt.datetime,
              parties: Collection[str] | None = None) -> tuple[Credential, str]:
        """A new credential of ``party`` (one of ``parties`` when given) and its token, the only time it is seen."""
        if parties is not None:
            check_party(party, parties)
        if not isinstance(party, str) or not _PARTY.fullmatch(party):
            raise CredentialError(f"party {party!r} is not a party code (letters, digits, '-' or '_')")
        with self._changing():
            credential_id = secrets.token_hex(ID_HEX_DIGITS // 2)
            while credential_id in self._entries:
                credential_id = secrets.token_hex(ID_HEX_DIGITS // 2)
            token = f"{TOKEN_PREFIX}{credential_id}_{secrets.token_urlsafe(_SECRET_BYTES)}"
            credential = Credential(credential_id, party, _utc(now))
            self._entries[credential_id] = (credential, _digest(token))
        return credential, token

    def revoke(self, credential_id: str, now: dt.datetime) -> Credential:
        """Revoke one credential; an unknown or already revoked one is refused."""
        with self._changing():
            entry = self._entries.get(credential_id)
            if entry is None:
                raise CredentialError(f"no credential {credential_id!r} in {self.path}")
            credential, digest = entry
            if credential.revoked is not None:
                raise CredentialError(f"credential {credential_id} was revoked already, "
                                      f"at {credential.revoked.isoformat()}")
            revoked = Credential(credential.id, credential.party, credential.created, _utc(now))
            self._entries[credential_id] = (revoked, digest)
        return revoked

    def revoke_party(self, party: str, now: dt.datetime) -> list[Credential]:
        """Revoke every active credential of ``party``; a party with none is refused."""
        with self._changing():
            active = [(c, d) for c, d in self._entries.values() if c.party == party and c.active]
            if not active:
                raise CredentialError(f"party {party!r} has no active credential in {self.path}")
            revoked = []
            for credential, digest in active:
                revoked.append(Credential(credential.id, credential.party, credential.created, _utc(now)))
                self._entries[credential.id] = (revoked[-1], digest)
        return revoked

    def _parse(self, data: bytes) -> dict[str, tuple[Credential, str]]:
        return _parse(data, self.path)

    def _document(self) -> dict[str, Any]:
        return {"version": FORMAT_VERSION, "credentials": [
            {**credential.as_dict(), "sha256": self._entries[credential.id][1]} for credential in self.entries()]}


def _digest(token: str) -> str:
    return hashlib.sha256(token.encode("ascii")).hexdigest()


def _utc(moment: dt.datetime) -> dt.datetime:
    """``moment`` in UTC to the second (a naive one is taken as local time)."""
    return moment.astimezone(dt.timezone.utc).replace(microsecond=0)


def _parse(data: bytes, path: Path) -> dict[str, tuple[Credential, str]]:
    """The entries of a credentials file's bytes, each field checked; anything else names the file."""
    try:
        document = json.loads(data)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise CredentialError(f"{path} is not a credentials file: it does not parse as JSON ({exc})") from None
    if not isinstance(document, dict) or document.get("version") != FORMAT_VERSION \
            or not isinstance(document.get("credentials"), list):
        raise CredentialError(f"{path} is not a credentials file: expected "
                              f'{{"version": {FORMAT_VERSION}, "credentials": [...]}}')
    entries: dict[str, tuple[Credential, str]] = {}
    for number, item in enumerate(document["credentials"], start=1):
        try:
            credential, digest = _entry(item)
        except (TypeError, ValueError) as exc:
            raise CredentialError(f"{path}: credential {number} is malformed: {exc}") from None
        if credential.id in entries:
            raise CredentialError(f"{path}: credential id {credential.id} appears twice")
        entries[credential.id] = (credential, digest)
    return entries


def _entry(item: Any) -> tuple[Credential, str]:
    if not isinstance(item, dict) or set(item) != _FIELDS:
        raise ValueError(f"expected the fields {', '.join(sorted(_FIELDS))}")
    for name, pattern in (("id", _ID), ("party", _PARTY), ("sha256", _DIGEST)):
        if not isinstance(item[name], str) or not pattern.fullmatch(item[name]):
            raise ValueError(f"{name} {item[name]!r} is not well formed")
    revoked = item["revoked"]
    return Credential(item["id"], item["party"], _moment(item["created"]),
                      None if revoked is None else _moment(revoked)), item["sha256"]


def _moment(text: Any) -> dt.datetime:
    moment = dt.datetime.fromisoformat(text)  # TypeError for a non-string, ValueError for bad text
    if moment.tzinfo is None:
        raise ValueError(f"time {text!r} has no UTC offset")
    return moment
