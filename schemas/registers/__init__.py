"""The register declarations: everything the exchange knows about a register, said once.

Each register is one TOML file in this directory, ``<entity_type>.toml``; ``index.toml``
lists them in catalog order (``registers = [...]``). ``declarations()`` reads and checks
them once per process (``loader``), as frozen dataclasses (``declaration``). A file holds::

    entity_type = "ship"                 # the register's entity type, the file's name
    name_zh = "营运船舶"                  # the register's Chinese and English names
    name_en = "Operating ships"
    record = "roadx.Ship"                # the Avro record's full name
    key = ["ship_id"]                    # the fields whose values, joined by ":", are the natural key
    view = "current_ships"               # the store's view of each entity's current version
    warnings = ["..."]                   # rules on the record as a whole (errors = [...] likewise)

    [[fields]]                           # one table per field, in record order
    name = "operator_uscc"               # canonical name
    type = "string"                      # the non-null Avro type, as an .avsc file writes it
    required = true                      # else nullable (["null", type], default null) unless
                                         #   default = ... is given (then the type, with that default)
    label_zh = "经营人统一社会信用代码"    # the preferred Chinese label of the column
    labels = ["统一社会信用代码"]          # other labels provincial exports head the column with
    standard = "GB 32100-2015"           # the identifier standard its values are checked against
    canonical = true                     # an identifier with one canonical form (schemas.identifiers)
    errors = ["invalid_uscc"]            # the rules that check it: rejecting ...
    warnings = ["uscc_unknown_org_type"] # ... and letting it pass with a finding
    refers_to = ["shipping_enterprise"]  # it names an entity of these registers (routing, relational rules)
    ref_by = "uscc"                      # by this field of theirs (default: their one key field;
                                         #   "entity_key": the value is a whole entity key)
    # code_table = "ship.ship_type"      # the code table its values come from
    # personal = "id_number"             # masked in the store as an ID number ("phone": as a phone number)
    # expected = true                    # optional, but its absence lowers completeness
    # in_view = false                    # not a column of the store's view
    # columns = [{name = "...", labels = ["..."]}]  # a nested record's parts, as file columns

    [code_tables.ship_type]              # a code table this register defines: <entity>.<field>
    confirmed = false                    # no standard at hand confirms it (its rule warns)
    codes = {bulk_carrier = ["散货船"]}   # code -> the Chinese labels files use for it

Code tables a register does not define are ``schemas.codes.CODE_TABLES``'.

Where the declarations are read from is configuration: this directory, unless
``ROADX_REGISTERS_DIR`` names another (``directory()``). It is read once per process, before
anything else is: the envelope's union, the stage's rules, the store's views and the catalog are
made from it at load, so a register added there is carried end to end with no change of code —
every process of one exchange must read the same directory.
"""

from __future__ import annotations

import functools
import os
from pathlib import Path
from types import MappingProxyType
from typing import Mapping

from .. import codes
from .declaration import (ENTITY_KEY, KINDS, PERSONAL_KINDS, CodeTable, Column, FieldDecl, Reference, RegisterDecl,
                          kind_of)
from .loader import INDEX, load

__all__ = [
    "CodeTable", "Column", "DIRECTORY", "DIRECTORY_ENV", "ENTITY_KEY", "FieldDecl", "INDEX", "KINDS", "PERSONAL_KINDS", "Reference",
    "RegisterDecl", "code_tables", "declaration", "declarations", "directory", "kind_of", "load",
]

DIRECTORY = Path(__file__).parent  # the exchange's own declarations
DIRECTORY_ENV = "ROADX_REGISTERS_DIR"


def directory() -> Path:
    """The directory the declarations are read from: ``ROADX_REGISTERS_DIR``, else ``DIRECTORY``."""
    configured = os.environ.get(DIRECTORY_ENV, "").strip()
    return Path(configured) if configured else DIRECTORY


@functools.cache
def declarations() -> tuple[RegisterDecl, ...]:
    """Every register declared (``directory()``), in catalog order; read once per process."""
    return load(directory())


def declaration(entity_type: str) -> RegisterDecl:
    """The declaration of one register; ``KeyError`` for an undeclared one."""
    for register in declarations():
        if register.entity_type == entity_type:
            return register
    raise KeyError(f"no register {entity_type!r} is declared")


@functools.cache
def code_tables() -> Mapping[str, tuple[str, ...]]:
    """Every code table a field may name, ``<entity>.<field>`` → its codes in order:
    ``schemas.codes.CODE_TABLES`` and the tables the registers define."""
    tables = dict(codes.CODE_TABLES)
    tables.update({name: tuple(table.codes) for register in declarations()
                   for name, table in register.code_tables.items()})
    return MappingProxyType(tables)
