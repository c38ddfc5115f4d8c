"""One row of text cells → one entity record, typed and checked, or a ``BadRow``.

Field types come from the entity's Avro record: strings, ints and longs, dates (kept as
days since 1970-01-01, which the codec writes as Avro ``date``), timestamps (epoch ms;
times without a zone are China Standard Time) and the list of qualification types.
Identifiers are written in their canonical form (``schemas.identifiers.canonical``: no
spaces, dashes or full-width characters, capitals) and checked with ``schemas.identifiers``;
a value that had to be rewritten is noted (``Normalised``) for the row report. Chinese code
labels (车牌颜色 黄, 案件阶段 立案, 状态 正常, 船舶种类 散货船 …) are turned into the codes of the field's
code table. What each field is — kind, canonical form, code table, unit, the checks of its
declared error rules — comes from the register's declaration (``fields``), so a register is
parsed without code of its own. A value outside a code table rejects the row when the
declaration makes its rule an error (the road registers), and passes as given when it makes it
a warning (the water registers' unconfirmed tables: the stage warns). A field the file has no
column for may take one value for every row from the mapping (``constants``).

Amounts of money are whole yuan (a field named ``*_yuan``): a cell may carry its unit
(``3200万元``, ``1.5亿元``, ``120000元``); a bare number is in the column's unit, yuan unless the
header says otherwise (``总投资(万元)``: ``scales`` from ``headers.column_scales``).

A licence's seal (``schemas.seals``) is passed through when the export has it: in three columns
(``seal_key_id`` 印章密钥标识, ``seal_signature`` 印章签名值 in base64, ``sealed_at`` 签章时间), or
in one (``seal`` 电子印章) holding the licence's QR payload; a row without them is unsealed. A
seal given in part, malformed, or of another licence number is a bad row; whether it verifies is
the hub's to say.
"""

from __future__ import annotations

import base64
import binascii
import datetime
import functools
import re
from typing import Any, Callable, Mapping, NamedTuple

from decimal import Decimal, InvalidOperation

from schemas import identifiers, registers, seals
from schemas.contract import FieldSpec
from schemas.errors import ProvenanceError

from ..errors import BadRow
from . import fields
from .fields import YUAN_UNITS, field_specs
from .tabular import formula_like

CHINA_TZ = datetime.timezone(datetime.timedelta(hours=8))
_EPOCH = datetime.date(1970, 1, 1)
_INT = re.compile(r"^[+-]?[0-9]+(\.0*)?$")
_DECIMAL = re.compile(r"^[0-9]+(\.[0-9]+)?$")
_DATE = re.compile(r"^(\d{4})[-/.年](\d{1,2})[-/.月](\d{1,2})日?$|^(\d{4})(\d{2})(\d{2})$")
_TIME = re.compile(r"^(?P<d>[^ T]+)(?:[ T](?P<h>\d{1,2}):(?P<m>\d{2})(?::(?P<s>\d{2}))?)?$")
_LIST_SPLIT = re.compile(r"[;；,，、|]")

_COLOR_BY_NAME = {name: code for code, name in identifiers.PLATE_COLORS.items()} | {"黄色": 2, "蓝色": 1, "绿色": 5}
SEAL_COLUMNS = fields.nested_columns("licence", seals.SEAL_FIELD)  # a licence's seal in three columns


def column_fields(entity: str) -> list[str]:
    """What a column may give: the entity's fields, and a nested field's columns (a licence's seal's three parts)."""
    return list(fields.column_fields(entity))


class Normalised(NamedTuple):
    """An identifier written in canonical form: the field, the value as given, as stored."""

    field: str
    raw: str
    value: str


class RowParser:
    """Parses the rows of one file whose columns map to ``columns`` (None: ignored).

    ``constants`` gives the cell text of fields without a column, the same for every row;
    ``today`` is the day birth dates must not be after (None: not compared); ``scales`` the unit of
    a money column's bare numbers, in yuan (``headers.column_scales``; default: yuan).
    """

    def __init__(self, entity: str, columns: tuple[str | None, ...], uscc_allow: frozenset[str] = frozenset(),
                 constants: Mapping[str, str] | None = None, today: datetime.date | None = None,
                 scales: Mapping[str, int] | None = None) -> None:
        self.entity = entity
        self.columns = columns
        self._specs = field_specs(entity)
        self._uscc_allow = uscc_allow
        self._constants = dict(constants or {})
        self._today = today
        self._scales = dict(scales or {})
        self._checks = fields.record_checks(entity)
        self._index = {name: i for i, name in enumerate(columns) if name is not None}
        names = {spec.name for spec in self._specs}
        self._canonical = [(name, i, form) for name, i in self._index.items()
                           if name in names and (form := fields.canonical_form(entity, name)) is not None]

    def parse(self, cells: tuple[str, ...], notes: list[Normalised] | None = None) -> dict[str, Any]:
        """The record of one row; raises ``BadRow`` for the first rule it breaks.

        Identifiers rewritten into canonical form are appended to ``notes``.
        """
        self._check_width(cells)
        record: dict[str, Any] = {}
        for spec in self._specs:
            record[spec.name] = self._seal(cells, record) if spec.kind == "record" else self._value(spec, cells)
        for check in self._checks:
            check(record, self._uscc_allow, self._today)
        if notes is not None:
            for name, index, form in self._canonical:
                raw = cells[index]
                if record[name] is not None and form(raw) != raw.strip(" \t\r\n"):
                    notes.append(Normalised(name, raw, record[name]))
        return record

    def key_of(self, cells: tuple[str, ...]) -> str | None:
        """The entity key of a row whose key fields parse, even if other fields do not."""
        try:
            keys = fields.key_fields(self.entity)
            parts = {spec.name: self._value(spec, cells) for spec in self._specs if spec.name in keys}
        except (BadRow, IndexError):
            return None
        if any(v is None for v in parts.values()):
            return None
        return fields.entity_key(self.entity, parts)

    def _check_width(self, cells: tuple[str, ...]) -> None:
        width = len(self.columns)
        if len(cells) != width and not (len(cells) > width and not any(c.strip() for c in cells[width:])):
            raise BadRow(None, "wrong_column_count", f"has {len(cells)} cells, the header has {width} columns")

    def _seal(self, cells: tuple[str, ...], record: Mapping[str, Any]) -> dict[str, Any] | None:
        """The licence's seal from its columns (None: the row has none)."""
        given = {}
        for name in (seals.SEAL_FIELD, *SEAL_COLUMNS):
            index = self._index.get(name)
            text = cells[index].strip() if index is not None and index < len(cells) else ""
            if formula_like(text):
                raise BadRow(name, "formula_injection", f"value {text!r} starts like a spreadsheet formula and is refused")
            if text:
                given[name] = text
        if not given:
            return None
        if seals.SEAL_FIELD in given:
            if len(given) > 1:
                raise BadRow("seal", "duplicate_seal", "the row gives its seal both as a QR payload and in parts")
            try:
                scanned = seals.parse_qr(given[seals.SEAL_FIELD])
            except ProvenanceError as exc:
                raise BadRow("seal", exc.rule, str(exc)) from exc
            if scanned.licence_no != record.get("licence_no"):
                raise BadRow("seal", "seal_of_another_licence",
                             f"the seal is of licence {scanned.licence_no!r}, the row's is {record.get('licence_no')!r}")
            seal = scanned.seal
            return {"key_id": seal.key_id, "signature": base64.b64encode(seal.signature).decode("ascii"),
                    "sealed_at": int(seal.sealed_at.timestamp() * 1000)}
        missing = [name for name in SEAL_COLUMNS if name not in given]
        if missing:
            raise BadRow(missing[0], "incomplete_seal", "a seal needs its key id, signature and sealed time; "
                                                        f"{', '.join(missing)} empty")
        try:
            raw = base64.b64decode(given["seal_signature"].replace("-", "+").replace("_", "/")
                                   + "=" * (-len(given["seal_signature"]) % 4), validate=True)
        except (binascii.Error, ValueError):
            raise BadRow("seal_signature", "malformed_seal", "the signature is not base64") from None
        seal = {"key_id": given["seal_key_id"], "signature": base64.b64encode(raw).decode("ascii"),
                "sealed_at": _timestamp(given["sealed_at"], "sealed_at", self.entity)}
        try:
            seals.read_seal(seal)
        except ValueError as exc:
            raise BadRow("seal", "malformed_seal", str(exc)) from exc
        return seal

    def _value(self, spec: FieldSpec, cells: tuple[str, ...]) -> Any:
        index = self._index.get(spec.name)
        scale = self._scales.get(spec.name, 1)
        if index is None and spec.name in self._constants:
            return _cell(self.entity, spec, self._constants[spec.name], scale)
        return _cell(self.entity, spec, cells[index] if index is not None and index < len(cells) else "", scale)


def parse_cell(entity: str, name: str, text: str) -> Any:
    """The value a cell ``text`` gives field ``name`` of ``entity``; raises ``BadRow``.

    Identifier standards are checked per record, not here.
    """
    spec = next((s for s in field_specs(entity) if s.name == name), None)
    if spec is None:
        raise BadRow(name, "unknown_field", f"{name!r} is not a {entity} field")
    return _cell(entity, spec, text)


def _cell(entity: str, spec: FieldSpec, text: str, scale: int = 1) -> Any:
    text = text.strip()
    if formula_like(text):
        raise BadRow(spec.name, "formula_injection",
                       f"value {text!r} starts like a spreadsheet formula and is refused")
    if not text:
        if spec.required:
            raise BadRow(spec.name, "missing_required", f"{spec.name} is required and empty")
        return list(spec.default or []) if spec.kind == "string_array" else None
    try:
        if fields.is_yuan(spec.name):
            return _yuan(text, spec.name, scale, _INT_BOUNDS[spec.kind])
        return _parser(entity, spec.name, spec.kind)(text, spec.name, entity)
    except BadRow:
        raise
    except ValueError as exc:
        raise BadRow(spec.name, f"invalid_{spec.kind}", f"{text!r} is not a valid {spec.kind}: {exc}") from exc


def _string(text: str, name: str, entity: str) -> str:
    table = fields.code_table(entity, name)
    if table is not None:
        return _code(table, text, name, entity)
    form = fields.canonical_form(entity, name)
    return form(text) if form is not None else text


def _code(table: str, text: str, name: str, entity: str) -> str:
    """The code a label (or a code) of ``table`` names; a value outside it is a bad row, or given as it
    is when its rule is a warning."""
    labels, known = fields.code_labels(table), registers.code_tables()[table]
    value = labels.get(text, text.lower())
    if value in known:
        return value
    if not fields.strict_codes(entity, name):
        return text
    raise BadRow(name, "unknown_code", f"{text!r} is not one of {', '.join(sorted(known))} (or {', '.join(labels)})")


def _codes(text: str, name: str, entity: str) -> list[str]:
    table = fields.code_table(entity, name)
    return [_code(table, part, name, entity) for part in _strings(text, name, entity)]


INT_RANGE = (-(2 ** 31), 2 ** 31 - 1)  # Avro int
LONG_RANGE = (-(2 ** 63), 2 ** 63 - 1)  # Avro long
EPOCH_MS_RANGE = (-62_135_596_800_000, 253_402_300_799_999)  # 0001-01-01 .. 9999-12-31 UTC


def _in_range(value: int, bounds: tuple[int, int], text: str, name: str) -> int:
    if not bounds[0] <= value <= bounds[1]:
        raise BadRow(name, "out_of_range", f"{text!r} is outside {bounds[0]}..{bounds[1]}")
    return value


def _integer(text: str, name: str, _entity: str) -> int:
    """A 32-bit whole number (Avro int)."""
    return _in_range(_whole(text, name), INT_RANGE, text, name)


def _long(text: str, name: str, _entity: str) -> int:
    """A 64-bit whole number (Avro long)."""
    return _in_range(_whole(text, name), LONG_RANGE, text, name)


def _whole(text: str, name: str) -> int:
    plain = text.replace(",", "").replace("，", "")
    if not _INT.match(plain):
        raise BadRow(name, "not_a_number", f"{text!r} is not a whole number")
    return int(plain.split(".")[0])


def _tonnage(text: str, name: str, _entity: str) -> int:
    """Kilograms; ``10.5吨``/``10.5t`` are tonnes, ``kg``/``千克``/bare numbers are kilograms."""
    plain = text.replace(",", "").lower()
    for suffix, factor in (("千克", 1), ("kg", 1), ("吨", 1000), ("t", 1000)):
        if plain.endswith(suffix):
            number = plain[: -len(suffix)].strip()
            break
    else:
        number, factor = plain, 1
    if not _DECIMAL.match(number):
        raise BadRow(name, "not_a_number", f"{text!r} is not a weight (kilograms, or tonnes with 吨/t)")
    kg = float(number) * factor
    if not kg.is_integer():
        raise BadRow(name, "not_a_number", f"{text!r} is not a whole number of kilograms")
    return _in_range(int(kg), INT_RANGE, text, name)


def _plate_color(text: str, name: str, _entity: str) -> int:
    code = _COLOR_BY_NAME.get(text)
    if code is None:
        code = _integer(text, name, _entity)
    return code


_YUAN = re.compile(r"^(?P<n>[0-9]+(?:\.[0-9]+)?)(?P<u>元|万元|亿元)?$")


def _yuan(text: str, name: str, scale: int, bounds: tuple[int, int]) -> int:
    """Whole yuan; a cell's unit (``万元``, ``亿元``, ``元``) wins over the column's ``scale``."""
    match = _YUAN.match(text.replace(",", "").replace("，", "").replace(" ", ""))
    if not match:
        raise BadRow(name, "not_a_number", f"{text!r} is not an amount (yuan, or 万元/亿元 with the unit)")
    factor = YUAN_UNITS[match["u"]] if match["u"] else scale
    try:
        amount = Decimal(match["n"]) * factor
    except InvalidOperation as exc:
        raise BadRow(name, "not_a_number", f"{text!r} is not an amount") from exc
    if amount != amount.to_integral_value():
        raise BadRow(name, "not_a_number", f"{text!r} is not a whole number of yuan")
    return _in_range(int(amount), bounds, text, name)


def parse_date(text: str) -> datetime.date:
    match = _DATE.match(text.split(" ")[0].split("T")[0])
    if not match:
        raise ValueError("expected YYYY-MM-DD, YYYY/MM/DD, YYYYMMDD or YYYY年M月D日")
    year, month, day = (int(g) for g in match.groups() if g is not None)
    return datetime.date(year, month, day)


def _date(text: str, name: str, _entity: str) -> int:
    try:
        return (parse_date(text) - _EPOCH).days
    except ValueError as exc:
        raise BadRow(name, "invalid_date", f"{text!r} is not a date: {exc}") from exc


def _timestamp(text: str, name: str, _entity: str) -> int:
    try:
        moment = datetime.datetime.fromisoformat(text)
    except ValueError:
        match = _TIME.match(text)
        try:
            if not match:
                raise ValueError("expected a date and time such as 2024-06-01 08:30:00")
            day = parse_date(match["d"])
            moment = datetime.datetime(day.year, day.month, day.day, int(match["h"] or 0), int(match["m"] or 0),
                                       int(match["s"] or 0))
        except ValueError as exc:
            raise BadRow(name, "invalid_timestamp", f"{text!r} is not a date and time: {exc}") from exc
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=CHINA_TZ)
    try:
        epoch_ms = int(moment.timestamp() * 1000)
    except (OverflowError, ValueError) as exc:
        raise BadRow(name, "out_of_range", f"{text!r} is outside the years 1..9999") from exc
    return _in_range(epoch_ms, EPOCH_MS_RANGE, text, name)


def _strings(text: str, _name: str, _entity: str) -> list[str]:
    return [part.strip() for part in _LIST_SPLIT.split(text) if part.strip()]


_KIND_PARSERS: dict[str, Callable[[str, str, str], Any]] = {
    "string": _string, "int": _integer, "long": _long, "date": _date, "timestamp": _timestamp,
    "string_array": _strings,
}
_INT_BOUNDS = {"int": INT_RANGE, "long": LONG_RANGE}


@functools.cache
def _parser(entity: str, name: str, kind: str) -> Callable[[str, str, str], Any]:
    """The parser of a field: by its declared unit (``_kg``), code table or rules, else by its kind."""
    if name.endswith("_kg") and kind == "int":
        return _tonnage
    if kind == "int" and "invalid_plate_color" in registers.declaration(entity).field(name).errors:
        return _plate_color
    if kind == "string_array" and fields.code_table(entity, name) is not None:
        return _codes
    return _KIND_PARSERS[kind]
