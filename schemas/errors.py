"""Errors of the contract package.

    ContractError
    ├── SchemaLoadError          an .avsc file is missing or does not parse
    ├── EncodeError              a record does not fit the schema
    ├── DecodeError              bytes on a topic cannot be turned into an event
    │   ├── NotFramedError       no Confluent framing (magic byte 0 + 4-byte id)
    │   ├── UnknownSchemaError   the schema id is known to no registry in use
    │   └── MalformedBodyError   framing is right, the Avro body is not
    ├── RegistryError            a Schema Registry call failed
    ├── InvalidIdentifier        an identifier breaks its standard (rule + message)
    ├── SettingsError            a setting (``ROADX_*`` or a command's option) is unknown, missing or malformed
    ├── CredentialError          the API credentials file cannot be used, or an issue or revocation is refused
    ├── KeyStoreError            a party's or the hub's key files cannot be used, or a key change is refused
    └── ProvenanceError          a manifest, receipt, seal or evidence entry does not parse or is refused
"""

from __future__ import annotations


class ContractError(Exception):
    """Base of every error raised by ``schemas``."""


class SchemaLoadError(ContractError):
    pass


class EncodeError(ContractError):
    pass


class DecodeError(ContractError):
    """Raised for undecodable bytes. ``rule`` is a stable machine-readable reason."""

    rule = "undecodable"


class NotFramedError(DecodeError):
    rule = "not_framed"


class UnknownSchemaError(DecodeError):
    rule = "unknown_schema_id"

    def __init__(self, schema_id: int, detail: str = "") -> None:
        self.schema_id = schema_id
        msg = f"schema id {schema_id} is not known to the registry"
        super().__init__(f"{msg}: {detail}" if detail else msg)


class MalformedBodyError(DecodeError):
    rule = "malformed_avro"


class RegistryError(ContractError):
    pass


class InvalidIdentifier(ContractError):
    """An identifier value breaks its standard.

    ``rule`` names the check (``invalid_uscc``, ``invalid_id_number``,
    ``invalid_plate``, ``invalid_region_code``); the message says why.
    """

    def __init__(self, rule: str, value: str, message: str) -> None:
        self.rule = rule
        self.value = value
        super().__init__(f"{rule}: {value!r} {message}")


class SettingsError(ContractError):
    """A setting is unknown, missing or malformed (``schemas.settings``), or a command's option is."""


class CredentialError(ContractError):
    """The API credentials file cannot be used, or an issue or revocation is refused (``schemas.credentials``)."""


class KeyStoreError(ContractError):
    """A party's or the hub's key files cannot be used, or a key change is refused (``schemas.keys``)."""


class ProvenanceError(ContractError):
    """A manifest, receipt, seal or evidence entry does not parse or is refused; ``rule`` names why."""

    def __init__(self, rule: str, message: str) -> None:
        self.rule = rule
        super().__init__(f"{rule}: {message}")
