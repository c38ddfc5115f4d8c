"""SM2 signatures with SM3 digests (GB/T 32918, GB/T 32905), through the ``tongsuopy`` wheel.

The one place roadx touches the SM2 library: generating a key pair, PEM in and out, signing
and verifying, and the key id a public key is known by. Signing costs about 0.3–0.7 ms,
so roadx signs submissions, receipts and licences, never single events (those carry an
HMAC-SM3, ``schemas.signing``).
"""

from __future__ import annotations

import hashlib

from tongsuopy.crypto import hashes, serialization
from tongsuopy.crypto.asymciphers import ec
from tongsuopy.crypto.exceptions import InternalError, InvalidSignature, UnsupportedAlgorithm

from .errors import KeyStoreError

PrivateKey = ec.EllipticCurvePrivateKey
PublicKey = ec.EllipticCurvePublicKey
_ALGORITHM = ec.ECDSA(hashes.SM3())


_SM3 = hashlib.new("sm3")  # copied for each digest: cheaper than looking the algorithm up each time


def sm3(data: bytes) -> bytes:
    """The SM3 digest of ``data`` (32 bytes)."""
    h = _SM3.copy()
    h.update(data)
    return h.digest()


def generate() -> PrivateKey:
    return ec.generate_private_key(ec.SM2())


def sign(key: PrivateKey, data: bytes) -> bytes:
    """An SM2 signature (DER) of ``data``."""
    return key.sign(data, _ALGORITHM)


def verify(public: PublicKey, signature: bytes, data: bytes) -> bool:
    """True if ``signature`` is ``public``'s SM2 signature of ``data``; never raises for bad bytes."""
    try:
        public.verify(signature, data, _ALGORITHM)
    except (InvalidSignature, InternalError, ValueError, TypeError):  # InternalError: bytes that are no DER signature
        return False
    return True


def private_pem(key: PrivateKey) -> bytes:
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption())


def public_pem(public: PublicKey) -> bytes:
    return public.public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)


def load_private(pem: bytes, where: str) -> PrivateKey:
    try:
        key = serialization.load_pem_private_key(pem, password=None)
    except (ValueError, TypeError, UnsupportedAlgorithm) as exc:
        raise KeyStoreError(f"{where} is not an SM2 private key in PEM: {exc}") from None
    if not isinstance(key, ec.EllipticCurvePrivateKey) or not isinstance(key.curve, ec.SM2):
        raise KeyStoreError(f"{where} holds a private key that is not on the SM2 curve")
    return key


def load_public(pem: bytes, where: str) -> PublicKey:
    try:
        public = serialization.load_pem_public_key(pem)
    except (ValueError, TypeError, UnsupportedAlgorithm) as exc:
        raise KeyStoreError(f"{where} is not an SM2 public key in PEM: {exc}") from None
    if not isinstance(public, ec.EllipticCurvePublicKey) or not isinstance(public.curve, ec.SM2):
        raise KeyStoreError(f"{where} holds a public key that is not on the SM2 curve")
    return public


def fingerprint(public: PublicKey) -> str:
    """The first 8 hex digits of the SM3 digest of the key's DER SubjectPublicKeyInfo."""
    der = public.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    return sm3(der)[:4].hex()
