"""Provenance: each province signs its events with HMAC-SM3 under its own key.

The envelope's last field is ``signature`` (32 bytes, so its Avro encoding is the length
byte 0x40 followed by the MAC). The MAC covers every framed byte before that field —
magic byte, schema id and all other fields — so a verifier needs no re-encoding.
"""

from __future__ import annotations

import functools
import hmac as std_hmac

from cryptography.hazmat.primitives import hashes, hmac

MAC_LEN = 32
_LEN_BYTE = MAC_LEN * 2  # Avro zig-zag varint of 32
PLACEHOLDER = b"\x00" * MAC_LEN
KEYED_CACHE_SIZE = 256  # keyed contexts kept: every party's current and next keys, and the hub's


def mac(key: bytes, data: bytes) -> bytes:
    h = _keyed(key).copy()
    h.update(data)
    return h.finalize()


@functools.lru_cache(maxsize=KEYED_CACHE_SIZE)
def _keyed(key: bytes) -> hmac.HMAC:
    """An HMAC-SM3 context that has taken in ``key``, to copy per message: keying costs more than
    a whole event's digest, and a party's key signs or verifies every one of its events."""
    return hmac.HMAC(key, hashes.SM3())


def seal(framed_with_placeholder: bytes, key: bytes) -> bytes:
    """Replace the placeholder signature at the end of a framed message with the MAC."""
    signed = framed_with_placeholder[: -MAC_LEN - 1]
    return framed_with_placeholder[:-MAC_LEN] + mac(key, signed)


def verify(framed: bytes, key: bytes) -> bool:
    """True if the framed message ends with a valid MAC under ``key``."""
    if len(framed) < MAC_LEN + 6 or framed[-MAC_LEN - 1] != _LEN_BYTE:
        return False
    expected = mac(key, framed[: -MAC_LEN - 1])
    return std_hmac.compare_digest(expected, framed[-MAC_LEN:])
