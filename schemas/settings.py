"""Typed settings, resolved once at the entry point and passed down: the bottom layer of every process.

Sources, lowest to highest precedence: defaults, ``ROADX_*`` environment variables,
command-line flags. Unknown ``ROADX_*`` variables are rejected, so a typo never
silently falls back to a default. Secrets are read from files and never printed.
"""

from __future__ import annotations

import datetime as dt
import os
import secrets
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any, Mapping

from . import registers, signing
from .keys import HubKeys, PartyKey, PartyKeys, provision
from .errors import SettingsError
from .identifiers import PROVINCES, USCC_ALPHABET
from .parties import PROVINCE, Parties, Party, load_parties
from .topics import TopicNames

ENV_PREFIX = "ROADX_"
DEDUP_RETENTION_HOURS = 168.0  # how long the stream stage remembers an accepted event id at least, by default


@dataclass(frozen=True)
class Settings:
    data_dir: Path = Path(".roadx")
    # Kafka bootstrap servers; empty means the embedded Tansu broker of data_dir.
    bootstrap_servers: str = ""
    # ClickHouse URL (http://user:pass@host:8123/db); empty means chDB under data_dir.
    clickhouse_url: str = ""
    clickhouse_database: str = "roadx"
    schema_registry_url: str = ""
    # The parties taking part (``ROADX_PARTIES``, or ``ROADX_PROVINCES``, its first name): codes of
    # the party set (``parties()``), or ``all``; by default every party of kind province.
    provinces: tuple[str, ...] = tuple(PROVINCES)
    # A JSON or TOML file replacing the built-in party set (``schemas.parties``); empty: the built-in one.
    parties_file: Path | None = None
    # A directory of register declarations replacing the built-in one (``schemas.registers``); empty:
    # the built-in one. Read once when a process starts, from its environment (ROADX_REGISTERS_DIR).
    registers_dir: Path | None = None
    partitions: int = 3
    national_partitions: int = 6
    session_timeout_ms: int = 6000
    master_key_file: Path | None = None
    # Where the parties' own sides keep their keys (``roadx keys init``), apart from the hub's
    # data_dir; empty means "<data_dir>-parties" beside it.
    parties_dir: Path | None = None
    # Make and register a party's keys the first time they are needed, as the embedded stack and
    # the demo do. A real deployment turns it off: each party runs ``roadx keys init`` on its own
    # side and the hub ``roadx keys register``.
    auto_keys: bool = True
    sink_batch_size: int = 5000
    sink_flush_seconds: float = 0.5
    # Most messages a stream worker takes per batch; each batch costs three flushes and a commit,
    # so larger batches carry more (1,000 → 5,000: about +20% in-process), a quiet line sends smaller ones.
    stream_batch_size: int = 5000
    # How long an accepted event id is remembered for exact deduplication (hours).
    dedup_retention_hours: float = DEDUP_RETENTION_HOURS
    # How long after a finding that a referenced entity is unknown that entity may still arrive
    # and withdraw it (seconds); the report counts such a finding only once this has passed.
    reference_grace_seconds: int = 3600
    metrics_port: int = 0
    # Loopback port on which the sink serves the embedded store (ClickHouse HTTP, read-only); 0 = off.
    store_http_port: int = 0
    # Port of the information service's HTTP API (roadx worker service); 0 = a free port, chosen at start.
    service_port: int = 0
    # Address the information service binds to; 0.0.0.0 in containers.
    service_host: str = "127.0.0.1"
    # Requests a second one party's credential may make to the service (sustained; bursts up to
    # the same number), beyond which it is answered 429.
    service_rate_per_second: float = 50.0
    # Case workflows: seconds a target province has for its receipt (回执) and for its answer, from
    # the routing, and how often workflows are checked against them.
    case_receipt_seconds: float = 86_400.0
    case_answer_seconds: float = 30 * 86_400.0
    case_check_seconds: float = 60.0
    # How long a submission's manifest waits for its events, and events naming a submission wait
    # for its manifest, before the hub's receipt says what is missing (seconds).
    submission_wait_seconds: float = 300.0
    # How long a reply may wait for the case it answers to be taken in before it is refused.
    case_reply_grace_seconds: float = 3600.0
    # Address the metrics endpoint binds to; 0.0.0.0 in containers so Prometheus can scrape it.
    metrics_host: str = "127.0.0.1"
    # Replication factor of the exchange's topics; 0 means 1 on the embedded broker, 3 on a cluster.
    replication_factor: int = 0
    # Kafka client security (TLS, SASL/SCRAM), passed to every Kafka client by kafka_conf().
    # The SASL password is read from its file when a client is built; only the path is kept here.
    kafka_security_protocol: str = ""
    kafka_sasl_mechanism: str = ""
    kafka_sasl_username: str = ""
    kafka_sasl_password_file: Path | None = None
    kafka_ssl_ca_file: Path | None = None
    kafka_ssl_certificate_file: Path | None = None
    kafka_ssl_key_file: Path | None = None
    # Put before every topic and group name; lets one broker hold isolated exchanges.
    topic_prefix: str = ""
    # Early pilot credit codes (Fujian) valid in law but failing the GB 32100 checksum: a text file,
    # one code a line (# starts a comment). The file adapters and the stream stage accept them alike.
    uscc_allow_file: Path | None = None
    _keys: dict[str, Any] = field(default_factory=dict, repr=False, compare=False)
    _uscc_allow: list[frozenset[str]] = field(default_factory=list, repr=False, compare=False)
    _parties: dict[Path | None, Parties] = field(default_factory=dict, repr=False, compare=False)

    @property
    def embedded(self) -> bool:
        return not self.bootstrap_servers

    @property
    def topics(self) -> TopicNames:
        return TopicNames(self.topic_prefix)

    @property
    def store_path(self) -> Path:
        return self.data_dir / "store"

    @property
    def stack_file(self) -> Path:
        return self.data_dir / "stack.json"

    @property
    def spool_dir(self) -> Path:
        return self.data_dir / "spool"

    def kafka_conf(self, **extra: Any) -> dict[str, Any]:
        """Base confluent-kafka client settings."""
        if not self.bootstrap_servers:
            raise SettingsError("no Kafka bootstrap servers: start the stack (roadx up) or set ROADX_BOOTSTRAP_SERVERS")
        return {"bootstrap.servers": self.bootstrap_servers, **self.kafka_security_conf(), **extra}

    def kafka_security_conf(self) -> dict[str, str]:
        """TLS and SASL client settings; the SASL password comes from its file, read now."""
        conf: dict[str, str] = {}
        if self.kafka_security_protocol:
            conf["security.protocol"] = self.kafka_security_protocol
        if self.kafka_sasl_mechanism:
            conf["sasl.mechanism"] = self.kafka_sasl_mechanism
        if self.kafka_sasl_username:
            conf["sasl.username"] = self.kafka_sasl_username
        if self.kafka_sasl_password_file is not None:
            conf["sasl.password"] = _read_password(self.kafka_sasl_password_file)
        for key, path in (("ssl.ca.location", self.kafka_ssl_ca_file),
                          ("ssl.certificate.location", self.kafka_ssl_certificate_file),
                          ("ssl.key.location", self.kafka_ssl_key_file)):
            if path is not None:
                conf[key] = str(path)
        return conf

    @property
    def topic_replication_factor(self) -> int:
        """Replication factor of new topics: the setting, else 1 embedded and 3 on a cluster."""
        if self.replication_factor:
            return self.replication_factor
        return 1 if self.embedded else 3

    def master_key(self) -> bytes:
        """The exchange's master secret (province keys and PII tokens derive from it)."""
        path = self.master_key_file or self.data_dir / "secrets" / "master.key"
        if not path.exists():
            if self.master_key_file is not None:
                raise SettingsError(f"master key file {path} does not exist")
            _write_secret(path, secrets.token_bytes(32))
        key = path.read_bytes()
        if len(key) < 16:
            raise SettingsError(f"master key file {path} holds fewer than 16 bytes")
        return key

    @property
    def party_keys_dir(self) -> Path:
        """Where the parties' own sides keep their keys, one directory per party."""
        return self.parties_dir or Path(f"{self.data_dir.absolute()}-parties")

    def party_keys(self, party: str) -> PartyKeys:
        """The party's own key sets (its side, not the hub's)."""
        if party not in self.provinces:
            raise SettingsError(f"unknown party {party!r}")
        keys = self._keys.get(party)
        if keys is None:
            keys = self._keys[party] = PartyKeys(self.party_keys_dir / party, party)
        return keys

    def hub_keys(self) -> HubKeys:
        """The hub's own key pair and the parties' registered keys (``<data_dir>/keys``)."""
        keys = self._keys.get("")
        if keys is None:
            keys = self._keys[""] = HubKeys.load(self.data_dir / "keys")
        return keys

    def party_key(self, party: str, now: dt.datetime | None = None) -> PartyKey:
        """The key set ``party`` signs with now, from its own side; made and registered first
        when ``auto_keys`` is on and it has none."""
        now = now or dt.datetime.now(dt.timezone.utc)
        keys = self.party_keys(party)
        if self.auto_keys and f"provisioned:{party}" not in self._keys:
            self._keys[f"provisioned:{party}"] = True
            return provision(keys, self.hub_keys(), now, self.provinces)
        return keys.current(now)

    def province_key(self, province: str) -> bytes:
        """The event secret ``province`` signs its events and replies with (``party_key``)."""
        return self.party_key(province).event_secret

    def uscc_allow(self) -> frozenset[str]:
        """The codes of ``uscc_allow_file`` (read once; none without the file)."""
        if not self._uscc_allow:
            self._uscc_allow.append(_read_uscc_allow(self.uscc_allow_file) if self.uscc_allow_file else frozenset())
        return self._uscc_allow[0]

    def parties(self) -> Parties:
        """The party set: ``parties_file``'s, else the built-in one (read once)."""
        parties = self._parties.get(self.parties_file)
        if parties is None:
            parties = self._parties[self.parties_file] = load_parties(self.parties_file)
        return parties

    def taking_part(self) -> dict[str, Party]:
        """The parties taking part (``provinces``), by code, in their order."""
        parties = self.parties()
        return {p: parties[p] for p in self.provinces if p in parties}

    def registers_of(self) -> dict[str, frozenset[str]]:
        """The registers each party taking part may publish."""
        return {code: frozenset(party.registers) for code, party in self.taking_part().items()}

    def pii_key(self) -> bytes:
        return signing.mac(self.master_key(), b"roadx/pii-token")

    def with_overrides(self, **values: Any) -> "Settings":
        return replace(self, **{k: v for k, v in values.items() if v is not None})


def _read_password(path: Path) -> str:
    """A secret from its file, without the trailing newline; errors name the file only."""
    try:
        password = path.read_text("utf-8").rstrip("\r\n")
    except (OSError, UnicodeDecodeError) as exc:
        raise SettingsError(f"cannot read the SASL password file {path}: {exc.__class__.__name__}") from None
    if not password:
        raise SettingsError(f"the SASL password file {path} is empty")
    return password


def _read_uscc_allow(path: Path) -> frozenset[str]:
    """The codes of an allow-list file; each must be 18 characters of the GB 32100 alphabet."""
    try:
        text = path.read_text("utf-8-sig")
    except (OSError, UnicodeDecodeError) as exc:
        raise SettingsError(f"cannot read ROADX_USCC_ALLOW_FILE {path}: {exc.__class__.__name__}: {exc}") from None
    codes = set()
    for number, line in enumerate(text.splitlines(), start=1):
        code = line.split("#", 1)[0].strip()
        if not code:
            continue
        if len(code) != 18 or not set(code) <= USCC_ALPHABET:
            raise SettingsError(f"ROADX_USCC_ALLOW_FILE {path} line {number}: {code!r} is not a credit code "
                                f"(18 characters: digits and capitals but I, O, S, V, Z)")
        codes.add(code)
    return frozenset(codes)


def _write_secret(path: Path, secret: bytes) -> None:
    """Create a key file readable by its owner only; a file that appeared meanwhile is kept.

    The secret is written to a private temporary file first and then linked into place, so
    another process starting at the same moment never reads a half-written key.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        with os.fdopen(fd, "wb") as out:
            out.write(secret)
            out.flush()
            os.fsync(out.fileno())
        try:
            os.link(tmp, path)
        except FileExistsError:
            pass
    finally:
        tmp.unlink(missing_ok=True)


_FIELDS = {f.name: f for f in fields(Settings) if not f.name.startswith("_")}
_PATH_FIELDS = ("data_dir", "master_key_file", "parties_dir", "kafka_sasl_password_file", "kafka_ssl_ca_file",
                "kafka_ssl_certificate_file", "kafka_ssl_key_file", "uscc_allow_file", "parties_file", "registers_dir")
# ROADX_PARTIES is the selection's name; ROADX_PROVINCES, its first one, stays an alias.
_ALIASES = {"parties": "provinces"}


def _convert(name: str, raw: str) -> Any:
    current = getattr(Settings(), name)
    try:
        if name == "provinces":
            codes = tuple(p.strip() for p in raw.split(",") if p.strip())
            if not codes:
                raise ValueError("empty list")
            return codes
        if name in _PATH_FIELDS:
            return Path(raw)
        if isinstance(current, bool):
            return raw.lower() in ("1", "true", "yes", "on")
        if isinstance(current, int):
            return int(raw)
        if isinstance(current, float):
            return float(raw)
        return raw
    except ValueError as exc:
        raise SettingsError(f"{ENV_PREFIX}{name.upper()}={raw!r}: {exc}") from exc


def resolve(environ: Mapping[str, str] | None = None, **flags: Any) -> Settings:
    """Build settings from the environment, then flags (``None`` flags are ignored)."""
    environ = os.environ if environ is None else environ
    values: dict[str, Any] = {}
    given: dict[str, str] = {}  # field -> the variable that set it
    for var, raw in environ.items():
        if not var.startswith(ENV_PREFIX):
            continue
        name = var[len(ENV_PREFIX):].lower()
        name = _ALIASES.get(name, name)
        if name not in _FIELDS:
            known = ", ".join(ENV_PREFIX + n.upper() for n in sorted([*_FIELDS, *_ALIASES]))
            raise SettingsError(f"unknown setting {var}; known settings: {known}")
        value = _convert(name, raw)
        if name in values and values[name] != value:
            raise SettingsError(f"{given[name]} and {var} disagree ({','.join(values[name])} against "
                                f"{','.join(value)}): set one of them")
        values[name], given[name] = value, var
    for name, value in flags.items():
        if name not in _FIELDS:
            raise SettingsError(f"unknown setting {name!r}")
        if value is not None:
            values[name] = Path(value) if name == "data_dir" else value
    settings = Settings(**values)
    parties = settings.parties()  # a bad parties file fails here, at the entry point
    if "provinces" in values:
        settings = replace(settings, provinces=parties.select(values["provinces"], given.get("provinces", "provinces")))
    elif settings.parties_file is not None:
        settings = replace(settings, provinces=parties.of_kind(PROVINCE))
        if not settings.provinces:
            raise SettingsError(f"{parties.source} has no province: select the parties taking part with ROADX_PARTIES")
    _validate(settings)
    return settings


def _validate(settings: Settings) -> None:
    if settings.partitions < 1 or settings.national_partitions < 1:
        raise SettingsError("partition counts must be at least 1")
    if (settings.registers_dir or registers.DIRECTORY).absolute() != registers.directory().absolute():
        raise SettingsError(f"registers_dir {settings.registers_dir} is not the directory this process reads its "
                            f"register declarations from ({registers.directory()}): they are read once when a "
                            f"process starts, so set {registers.DIRECTORY_ENV} in its environment")
    registers.declarations()  # a bad declaration fails here, at the entry point
    parties = settings.parties()
    unknown = [p for p in settings.provinces if p not in parties]
    if unknown:
        raise SettingsError(f"unknown party codes {unknown}: the parties of {parties.source} are "
                            f"{', '.join(parties)} (ROADX_PARTIES selects among them)")
    if not settings.provinces:
        raise SettingsError("ROADX_PARTIES selects no party")
    if settings.sink_batch_size < 1 or settings.stream_batch_size < 1:
        raise SettingsError("batch sizes must be at least 1")
    if settings.dedup_retention_hours <= 0:
        raise SettingsError("ROADX_DEDUP_RETENTION_HOURS must be positive")
    if settings.reference_grace_seconds < 0:
        raise SettingsError("ROADX_REFERENCE_GRACE_SECONDS must be 0 or more")
    if not all(v > 0 for v in (settings.case_receipt_seconds, settings.case_answer_seconds,
                                settings.case_check_seconds, settings.case_reply_grace_seconds)):
        raise SettingsError("ROADX_CASE_RECEIPT_SECONDS, ROADX_CASE_ANSWER_SECONDS, ROADX_CASE_CHECK_SECONDS and "
                            "ROADX_CASE_REPLY_GRACE_SECONDS must be positive")
    if not settings.service_rate_per_second > 0:
        raise SettingsError("ROADX_SERVICE_RATE_PER_SECOND must be positive")
    if not 0 <= settings.service_port <= 65535:
        raise SettingsError(f"ROADX_SERVICE_PORT={settings.service_port}: a port is 0 to 65535")
    if settings.replication_factor < 0:
        raise SettingsError("ROADX_REPLICATION_FACTOR must be 0 (automatic) or at least 1")
    _validate_kafka_security(settings)
    settings.uscc_allow()  # a bad allow-list file fails here, at the entry point


_SECURITY_PROTOCOLS = ("PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL")
_SASL_MECHANISMS = ("PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512")


def _validate_kafka_security(settings: Settings) -> None:
    protocol = settings.kafka_security_protocol
    if protocol and protocol not in _SECURITY_PROTOCOLS:
        raise SettingsError(f"ROADX_KAFKA_SECURITY_PROTOCOL={protocol!r}: use one of {', '.join(_SECURITY_PROTOCOLS)}")
    mechanism = settings.kafka_sasl_mechanism
    if mechanism and mechanism not in _SASL_MECHANISMS:
        raise SettingsError(f"ROADX_KAFKA_SASL_MECHANISM={mechanism!r}: use one of {', '.join(_SASL_MECHANISMS)}")
    if protocol.startswith("SASL_") and not (
            mechanism and settings.kafka_sasl_username and settings.kafka_sasl_password_file):
        raise SettingsError(f"security protocol {protocol} needs ROADX_KAFKA_SASL_MECHANISM, "
                            f"ROADX_KAFKA_SASL_USERNAME and ROADX_KAFKA_SASL_PASSWORD_FILE")


def to_environ(settings: Settings) -> dict[str, str]:
    """The ``ROADX_*`` variables that make a child process resolve these same settings."""
    env: dict[str, str] = {}
    for name in _FIELDS:
        value = getattr(settings, name)
        if value is None:
            continue
        if name == "provinces":
            text = ",".join(value)
            env[ENV_PREFIX + "PARTIES"] = text  # both names, so a child's environment never holds two selections
        elif isinstance(value, Path):
            text = str(value.resolve())
        else:
            text = str(value)
        env[ENV_PREFIX + name.upper()] = text
    return env
