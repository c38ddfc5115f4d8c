"""The evidence log: every manifest and receipt, appended in order and hash-chained.

An entry is ``{index, kind, party, submission_id, at, document, prev, hash}``: ``kind`` is
``manifest`` or ``receipt``, ``document`` the signed document exactly as it travelled (its
compact JSON text), ``prev`` the hash of the entry before (64 zeros for the first) and
``hash = SM3(prev ‖ SM3(canonical entry without prev and hash))`` in hex. Changing an entry
breaks its own hash; removing or re-ordering one breaks the next entry's ``prev`` and the
run of indexes. ``verify`` re-checks all of it, and every signature: a manifest's with the
party's registered key (as it stood when the manifest was signed), a receipt's with the
hub's public key. A manifest the hub refused is expected not to verify: its receipt says so.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Callable

from . import sm2
from .errors import ProvenanceError
from .provenance import digest_of, parse_manifest, parse_receipt, signature_valid

GENESIS = "0" * 64
KINDS = ("manifest", "receipt")
ENTRY_FIELDS = ("index", "kind", "party", "submission_id", "at", "document", "prev", "hash")


def entry_hash(prev: str, index: int, kind: str, party: str, submission_id: str, at: str, document: str) -> str:
    body = json.dumps({"index": index, "kind": kind, "party": party, "submission_id": submission_id, "at": at,
                       "document": document}, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return sm2.sm3(bytes.fromhex(prev) + sm2.sm3(body.encode("utf-8"))).hex()


def append(prev: Mapping[str, Any] | None, kind: str, party: str, submission_id: str, at: str,
           document: str) -> dict[str, Any]:
    """The entry that follows ``prev`` (None: the first of the log)."""
    if kind not in KINDS:
        raise ProvenanceError("bad_entry_kind", f"{kind!r} is none of {', '.join(KINDS)}")
    index = 0 if prev is None else int(prev["index"]) + 1
    before = GENESIS if prev is None else str(prev["hash"])
    return {"index": index, "kind": kind, "party": party, "submission_id": submission_id, "at": at,
            "document": document, "prev": before,
            "hash": entry_hash(before, index, kind, party, submission_id, at, document)}


@dataclass(frozen=True)
class Problem:
    index: int
    rule: str  # altered_entry | broken_chain | missing_or_reordered | bad_signature | unknown_key | …
    detail: str

    def __str__(self) -> str:
        return f"entry {self.index}: {self.rule}: {self.detail}"


def verify(entries: Iterable[Mapping[str, Any]], party_key: Callable[[str, str, dt.datetime], sm2.PublicKey],
           hub_public: sm2.PublicKey, first_index: int = 0, first_prev: str = GENESIS) -> list[Problem]:
    """Every problem of a run of entries (in stored order), chain and signatures alike.

    ``party_key(party, key_id, at)`` returns the party's registered public key as usable at
    ``at`` or raises ``ProvenanceError``; a run that starts mid-log (one month) gives the index
    and hash it follows.
    """
    problems: list[Problem] = []
    expected_index, prev = first_index, first_prev
    refused: set[tuple[str, str, str]] = set()  # (party, submission, manifest digest) a receipt refused
    manifests: list[tuple[int, Mapping[str, Any], dict[str, Any]]] = []
    for entry in entries:
        index = int(entry["index"])
        if index != expected_index:
            problems.append(Problem(index, "missing_or_reordered",
                                    f"expected entry {expected_index} here, found entry {index}"))
        if entry["prev"] != prev:
            problems.append(Problem(index, "broken_chain", "its prev is not the hash of the entry before it"))
        recomputed = entry_hash(str(entry["prev"]), index, str(entry["kind"]), str(entry["party"]),
                                str(entry["submission_id"]), str(entry["at"]), str(entry["document"]))
        if recomputed != entry["hash"]:
            problems.append(Problem(index, "altered_entry", "its content does not hash to its stored hash"))
        expected_index, prev = index + 1, str(entry["hash"])
        try:
            if entry["kind"] == "receipt":
                receipt = parse_receipt(str(entry["document"]).encode("utf-8"))
                if not signature_valid(receipt, hub_public):
                    problems.append(Problem(index, "bad_signature", f"receipt {receipt['receipt_id']} is not the hub's"))
                if receipt["status"] == "refused":
                    refused.add((receipt["party"], receipt["submission_id"], receipt["manifest_digest"]))
            elif entry["kind"] == "manifest":
                manifest = parse_manifest(str(entry["document"]).encode("utf-8"))
                manifests.append((index, entry, manifest))
            else:
                problems.append(Problem(index, "bad_entry_kind", f"{entry['kind']!r} is none of {', '.join(KINDS)}"))
        except ProvenanceError as exc:
            problems.append(Problem(index, exc.rule, str(exc)))
    for index, entry, manifest in manifests:
        if (manifest["party"], manifest["submission_id"], digest_of(manifest)) in refused:
            continue  # the hub refused it, and said so in its receipt
        try:
            public = party_key(manifest["party"], manifest["key_id"], dt.datetime.fromisoformat(manifest["created"]))
        except ProvenanceError as exc:
            problems.append(Problem(index, exc.rule, f"manifest of {manifest['submission_id']}: {exc}"))
            continue
        if not signature_valid(manifest, public):
            problems.append(Problem(index, "bad_signature",
                                    f"manifest of {manifest['submission_id']} is not signed with {manifest['key_id']}"))
    return sorted(problems, key=lambda p: p.index)
