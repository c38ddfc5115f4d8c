"""One row of text cells → one entity record, typed and checked, or a ``BadRow``.

Field types come from the entity's Avro record: strings, ints and longs, dates (kept as
days since 1970-01-01, which the codec writes as Avro ``date``), timestamps (epoch ms;
times without a zone are China Standard Time) and the list of qualification types.
Identifiers are written in their canonical form (``schemas.identifiers.canonical``: no
spaces, dashes or full-width characters, capitals) and checked with ``schemas.identifiers``;
a value that had to be rewritten is noted (``Normalised``) for the row report. Chinese code
labels (车牌颜色 黄, 案件阶段 立案, 状态 正常 …) are turned into the contract's codes. A field the
file has no column for may take one value for every row from the mapping (``constants``).

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
import re
from typing import Any, Callable, Mapping, NamedTuple

from schemas import codes, contract, identifiers, seals
from schemas.contract import FieldSpec, field_specs
from schemas.errors import InvalidIdentifier, ProvenanceError

from ..errors import BadRow
from .tabular import formula_like

CHINA_TZ = datetime.timezone(datetime.timedelta(hours=8))
_EPOCH = datetime.date(1970, 1, 1)
_INT = re.compile(r"^[+-]?[0-9]+(\.0*)?$")
_DECIMAL = re.compile(r"^[0-9]+(\.[0-9]+)?$")
_DATE = re.compile(r"^(\d{4})[-/.年](\d{1,2})[-/.月](\d{1,2})日?$|^(\d{4})(\d{2})(\d{2})$")
_TIME = re.compile(r"^(?P<d>[^ T]+)(?:[ T](?P<h>\d{1,2}):(?P<m>\d{2})(?::(?P<s>\d{2}))?)?$")
_LIST_SPLIT = re.compile(r"[;；,，、|]")

_COLOR_BY_NAME = {name: code for code, name in identifiers.PLATE_COLORS.items()} | {"黄色": 2, "蓝色": 1, "绿色": 5}
SEAL_COLUMNS = ("seal_key_id", "seal_signature", "sealed_at")  # a licence's seal in three columns


def column_fields(entity: str) -> list[str]:
    """What a column may give: the entity's fields, and for a licence the seal's three parts."""
    names = contract.entity_fields(entity)
    return [*names, *SEAL_COLUMNS] if seals.SEAL_FIELD in names and entity == "licence" else names


class Normalised(NamedTuple):
    """An identifier written in canonical form: the field, the value as given, as stored."""

    field: str
    raw: str
    value: str


class RowParser:
    """Parses the rows of one file whose columns map to ``columns`` (None: ignored).

    ``constants`` gives the cell text of fields without a column, the same for every row;
    ``today`` is the day birth dates must not be after (None: not compared).
    """

    def __init__(self, entity: str, columns: tuple[str | None, ...], uscc_allow: frozenset[str] = frozenset(),
                 constants: Mapping[str, str] | None = None, today: datetime.date | None = None) -> None:
        self.entity = entity
        self.columns = columns
        self._specs = field_specs(entity)
        self._uscc_allow = uscc_allow
        self._constants = dict(constants or {})
        self._today = today
        self._index = {name: i for i, name in enumerate(columns) if name is not None}
        self._canonical = [(name, i) for name, i in self._index.items() if name in identifiers.CANONICAL_FIELDS]

    def parse(self, cells: tuple[str, ...], notes: list[Normalised] | None = None) -> dict[str, Any]:
        """The record of one row; raises ``BadRow`` for the first rule it breaks.

        Identifiers rewritten into canonical form are appended to ``notes``.
        """
        self._check_width(cells)
        record: dict[str, Any] = {}
        for spec in self._specs:
            record[spec.name] = self._seal(cells, record) if spec.kind == "record" else self._value(spec, cells)
        _CHECKS[self.entity](record, self._uscc_allow, self._today)
        if notes is not None:
            for name, index in self._canonical:
                raw = cells[index]
                if record[name] is not None and identifiers.canonicalise(raw)[1]:
                    notes.append(Normalised(name, raw, record[name]))
        return record

    def key_of(self, cells: tuple[str, ...]) -> str | None:
        """The entity key of a row whose key fields parse, even if other fields do not."""
        try:
            parts = {spec.name: self._value(spec, cells) for spec in self._specs if spec.name in contract.KEY_FIELDS[self.entity]}
        except (BadRow, IndexError):
            return None
        if any(v is None for v in parts.values()):
            return None
        return contract.entity_key(self.entity, parts)

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
        if index is None and spec.name in self._constants:
            return _cell(self.entity, spec, self._constants[spec.name])
        return _cell(self.entity, spec, cells[index] if index is not None and index < len(cells) else "")


def parse_cell(entity: str, name: str, text: str) -> Any:
    """The value a cell ``text`` gives field ``name`` of ``entity``; raises ``BadRow``.

    Identifier standards are checked per record, not here.
    """
    spec = next((s for s in field_specs(entity) if s.name == name), None)
    if spec is None:
        raise BadRow(name, "unknown_field", f"{name!r} is not a {entity} field")
    return _cell(entity, spec, text)


def _cell(entity: str, spec: FieldSpec, text: str) -> Any:
    text = text.strip()
    if formula_like(text):
        raise BadRow(spec.name, "formula_injection",
                       f"value {text!r} starts like a spreadsheet formula and is refused")
    if not text:
        if spec.required:
            raise BadRow(spec.name, "missing_required", f"{spec.name} is required and empty")
        return list(spec.default or []) if spec.kind == "string_array" else None
    try:
        return _PARSERS.get(f"{entity}.{spec.name}", _KIND_PARSERS[spec.kind])(text, spec.name, entity)
    except BadRow:
        raise
    except ValueError as exc:
        raise BadRow(spec.name, f"invalid_{spec.kind}", f"{text!r} is not a valid {spec.kind}: {exc}") from exc


def _string(text: str, name: str, entity: str) -> str:
    code = f"{entity}.{name}"
    if code in codes.CODE_TABLES:
        value = codes.LABELS[code].get(text, text.lower())
        if value not in codes.CODE_TABLES[code]:
            raise BadRow(name, "unknown_code", f"{text!r} is not one of {', '.join(sorted(codes.CODE_TABLES[code]))} "
                           f"(or {', '.join(codes.LABELS[code])})")
        return value
    return identifiers.canonical(text) if name in identifiers.CANONICAL_FIELDS else text


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
_PARSERS: dict[str, Callable[[str, str, str], Any]] = {
    "vehicle.tonnage_kg": _tonnage, "vehicle.plate_color": _plate_color,
}


def _identifier(field: str, check: Callable[..., Any], value: Any, *args: Any) -> None:
    if value is None:
        return
    try:
        check(value, *args)
    except InvalidIdentifier as exc:
        raise BadRow(field, exc.rule, str(exc)) from exc


def _uscc(field: str, value: str | None, allow: frozenset[str]) -> None:
    _identifier(field, identifiers.check_uscc, value, allow)


def _id_number(field: str, value: str | None, today: datetime.date | None) -> None:
    _identifier(field, identifiers.check_id_number, value, today)


Today = datetime.date | None


def _check_operator(r: dict, allow: frozenset[str], today: Today) -> None:
    _uscc("uscc", r["uscc"], allow)
    _identifier("region_code", identifiers.check_region_code, r["region_code"])
    _id_number("legal_rep_id_number", r["legal_rep_id_number"], today)


def _check_vehicle(r: dict, allow: frozenset[str], _today: Today) -> None:
    _identifier("plate", identifiers.check_plate, r["plate"])
    _identifier("plate_color", identifiers.check_plate_color, r["plate_color"])
    _uscc("operator_uscc", r["operator_uscc"], allow)


def _check_practitioner(r: dict, allow: frozenset[str], today: Today) -> None:
    _id_number("id_number", r["id_number"], today)
    _identifier("region_code", identifiers.check_region_code, r["region_code"])
    _uscc("employer_uscc", r["employer_uscc"], allow)


def _check_licence(r: dict, _allow: frozenset[str], _today: Today) -> None:
    _identifier("issuer_region_code", identifiers.check_region_code, r["issuer_region_code"])
    if r["valid_from"] > r["valid_until"]:
        raise BadRow("valid_until", "invalid_validity", "有效期止 is before 有效期起")


def _check_case(r: dict, allow: frozenset[str], today: Today) -> None:
    _identifier("region_code", identifiers.check_region_code, r["region_code"])
    _identifier("involved_plate", identifiers.check_plate, r["involved_plate"])
    _uscc("involved_operator_uscc", r["involved_operator_uscc"], allow)
    _id_number("involved_id_number", r["involved_id_number"], today)


_CHECKS: dict[str, Callable[[dict, frozenset[str], Today], None]] = {
    "operator": _check_operator, "vehicle": _check_vehicle, "practitioner": _check_practitioner,
    "licence": _check_licence, "case": _check_case,
}
