"""The typed pipeline config: one frozen pydantic model per section of ``dataplump.yaml``.

Every model refuses unknown keys, and every field is documented by the docstring
under it (pydantic's ``use_attribute_docstrings``), so the model is the reference
``docs/config.md`` follows. Secrets are :class:`~pydantic.SecretStr` or
:class:`SecretUrl`, which ``repr``, ``str`` and ``model_dump`` show masked;
:meth:`PipelineConfig.redacted_dump` gives a plain dict that is safe to print.

Relative paths are resolved against the pipeline file's folder when validated with
``context={"base_dir": folder}`` (``load_config`` does). That is why sections
default to ``{}`` with ``validate_default=True``: their defaults go through the
same validators, so a default path is resolved too.

Contradictions between fields raise :func:`conflict`, whose ``at`` names the key
to blame, so an error points at ``tables.orders.cursor`` rather than ``tables.orders``.
"""

from __future__ import annotations

import re
from difflib import get_close_matches
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    PlainSerializer,
    PrivateAttr,
    SecretStr,
    ValidationError,
    ValidationInfo,
    field_serializer,
    field_validator,
    model_validator,
)
from pydantic_core import InitErrorDetails, PydanticCustomError
from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import ArgumentError

from dataplump.errors import ConfigError

if TYPE_CHECKING:
    from dataplump.contracts import Contract

MASK = "**********"
"""What a secret looks like in dumps (messages show ``'***'``)."""

Mode = Literal["full", "incremental"]
Engine = Literal["duckdb", "spark"]
SinkKind = Literal["delta", "parquet", "postgres"]
SinkMode = Literal["append", "merge"]
SecurityProtocol = Literal["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"]
SaslMechanism = Literal["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"]

_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]{0,99}")
# librdkafka properties whose values are credentials; masked in every dump of `kafka.extra`.
_SECRET_PROPERTY = re.compile(r"password|secret|token|credential|private", re.IGNORECASE)


_DURATION = re.compile(r"\s*(\d+(?:\.\d+)?)\s*(ms|s|m|min|h|d)?\s*", re.IGNORECASE)
_DURATION_UNIT = {"ms": 0.001, "s": 1.0, "m": 60.0, "min": 60.0, "h": 3600.0, "d": 86400.0}


def parse_duration(value: object) -> float:
    """Seconds from ``30s``, ``5m``, ``4h``, ``1d``, ``250ms`` or a plain number of seconds."""
    if isinstance(value, int | float) and not isinstance(value, bool):
        return float(value)
    match = _DURATION.fullmatch(value) if isinstance(value, str) else None
    if match is None:
        raise ValueError(f"expected a duration such as 30s, 5m, 4h or 1d, got {value!r}")
    number, unit = match.groups()
    return float(number) * _DURATION_UNIT[(unit or "s").lower()]


MAX_SECONDS = 10 * 365 * 86400.0
"""The longest duration a setting takes (ten years): past it, clocks and timers overflow."""
Seconds = Annotated[
    float,
    BeforeValidator(parse_duration),
    Field(ge=0, le=MAX_SECONDS, allow_inf_nan=False),
]
"""A duration: a number of seconds, or text with a unit (`30s`, `5m`, `4h`, `1d`)."""


def conflict(message: str, *at: str | int) -> PydanticCustomError:
    """A contradictory-config error; ``at`` is the key path below the model to blame."""
    return PydanticCustomError("config_conflict", "{message}", {"message": message, "at": at})


_SECRET_QUERY = re.compile(
    r"pass|pwd|secret|token|credential|private|api_?key|access_?key", re.IGNORECASE
)
"""URL query parameters whose values are credentials (libpq's ``password`` and
``sslpassword``, MySQL's ``passwd``, cloud drivers' tokens and keys)."""
_QUERY_MASK = "dpqmask0masked"


def masked_url(url: URL | str) -> str:
    """``url`` as messages show it: the password *and* every credential in the query
    (``?password=``, ``sslpassword``, ``passwd``, tokens) replaced by ``***``; an
    unparsable text is masked whole."""
    try:
        parsed = make_url(url) if isinstance(url, str) else url
    except (ArgumentError, ValueError):
        return MASK
    hidden = {key: _QUERY_MASK for key in parsed.query if _SECRET_QUERY.search(key)}
    if hidden:
        parsed = parsed.update_query_dict(hidden)
    return parsed.render_as_string(hide_password=True).replace(_QUERY_MASK, "***")


def url_secrets(url: URL | str) -> list[str]:
    """The credentials ``url`` holds: its password and the values of secret query
    parameters (what a message must never show, in any quoting)."""
    try:
        parsed = make_url(url) if isinstance(url, str) else url
    except (ArgumentError, ValueError):
        return [url] if isinstance(url, str) else []
    found = [str(parsed.password)] if parsed.password else []
    for key, value in parsed.query.items():
        if _SECRET_QUERY.search(key):
            found.extend([value] if isinstance(value, str) else list(value))
    return [f for f in found if f]


class SecretUrl(SecretStr):
    """A SQLAlchemy database URL that may hold a password; shown with the password (and
    any credential in its query) masked."""

    def masked(self) -> str:
        """The URL with its password and query credentials replaced by ``***`` (the whole
        URL if it cannot be parsed)."""
        return masked_url(self.get_secret_value())

    def _display(self) -> str:
        return self.masked()


def _check_url(url: SecretUrl) -> SecretUrl:
    try:
        make_url(url.get_secret_value())
    except (ArgumentError, ValueError):
        raise ValueError(
            "expected a SQLAlchemy URL such as `postgresql+psycopg://user:password@host:5432/db`,"
            " `mysql+pymysql://user:password@host/db` or `sqlite:///file.db`"
        ) from None
    return url


def _check_name(name: str) -> str:
    if not _NAME.fullmatch(name):
        raise ValueError(
            "expected 1 to 100 letters, digits, `_` or `-`, starting with a letter or digit"
            " (the name is part of Kafka topic names `<pipeline>.<table>.active`)"
        )
    return name


_TABLE_NAME = re.compile(r"[A-Za-z0-9_-]{1,200}")


def _check_table_name(name: str) -> str:
    if not _TABLE_NAME.fullmatch(name):
        raise ValueError(
            f"table `{name}`: a table name becomes part of Kafka topic names"
            f" (`<pipeline>.{name}.active`), which allow only letters, digits, `_` and `-`;"
            " expose the table through a view with such a name"
        )
    return name


def _as_list(value: Any) -> Any:
    return [value] if isinstance(value, str) else value


def _blank_to_none(value: Any) -> Any:
    return None if isinstance(value, str) and not value.strip() else value


def _to_property(value: Any) -> Any:
    """librdkafka takes every property as a string; YAML gives booleans and numbers."""
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value) if isinstance(value, int | float) else value


def _resolve(path: Path, info: ValidationInfo) -> Path:
    """``path`` relative to the pipeline file's folder; one that climbs out with ``..`` is
    resolved, so messages and `config check` show the folder it really is."""
    base = (info.context or {}).get("base_dir")
    path = path.expanduser()
    path = base / path if base is not None and not path.is_absolute() else path
    return path.resolve() if ".." in path.parts else path


DatabaseUrl = Annotated[
    SecretUrl,
    AfterValidator(_check_url),
    PlainSerializer(SecretUrl.masked, return_type=str, when_used="json"),
]
"""A SQLAlchemy URL, kept secret; JSON dumps show it with the password masked."""
Port = Annotated[int, Field(ge=1, le=65535)]
OptionalStr = Annotated[str | None, BeforeValidator(_blank_to_none)]
"""An optional string; empty (e.g. from `${VAR:-}`) means unset."""
OptionalSecret = Annotated[SecretStr | None, BeforeValidator(_blank_to_none)]
"""An optional secret; empty (e.g. from `${VAR:-}`) means unset."""
Positive = Annotated[int, Field(gt=0)]
MAX_BATCH_SIZE = 10_000_000
"""The most rows of a batch: a batch is held in memory and is one Kafka transaction."""


class _Model(BaseModel):
    model_config = ConfigDict(
        frozen=True,
        extra="forbid",
        use_attribute_docstrings=True,
        hide_input_in_errors=True,
        coerce_numbers_to_str=True,
    )


class PipelineSection(_Model):
    """``pipeline:`` — what this pipeline is called."""

    name: Annotated[str, AfterValidator(_check_name)]
    """Pipeline name, part of every Kafka topic name (`<name>.<table>.active`): 1-100 letters,
    digits, `_` or `-`, starting with a letter or digit."""


class SourceConfig(_Model):
    """``source:`` — the SQL database rows are extracted from."""

    url: DatabaseUrl
    """SQLAlchemy URL of the source database, e.g. `postgresql+psycopg://user:pw@host/db`,
    `mysql+pymysql://user:pw@host/db`, `sqlite:///demo.db`. Secret: shown with the password
    masked."""
    db_schema: OptionalStr = Field(None, alias="schema")
    """Database schema the tables live in (key `schema`); the connection's default if unset."""

    def masked_url(self) -> str:
        """The source URL with its password masked, safe to print."""
        return self.url.masked()


class TableConfig(_Model):
    """One entry of ``tables:`` — how to extract one source table."""

    primary_key: Annotated[tuple[str, ...], BeforeValidator(_as_list), Field(min_length=1)]
    """Primary key column, or a list of columns; it becomes the Kafka record key."""
    mode: Mode = "full"
    """`full`: read the whole table each run; `incremental`: read rows whose `cursor` grew."""
    cursor: OptionalStr = None
    """Column that grows with every change (e.g. `updated_at`); required for `incremental`,
    refused for `full`."""
    lag_seconds: float = Field(0.0, ge=0, le=MAX_SECONDS, allow_inf_nan=False)
    """Incremental reads stop this many seconds before now, so rows whose transaction commits
    late are not missed."""
    batch_size: Annotated[int, Field(gt=0, le=MAX_BATCH_SIZE)] = 10_000
    """Rows per Arrow record batch read from the source (one Kafka transaction each)."""
    sinks: Annotated[tuple[str, ...], BeforeValidator(_as_list)] | None = None
    """Names of the `sinks` this table is loaded into; default: every sink."""
    partition_by: Annotated[tuple[str, ...], BeforeValidator(_as_list)] = ()
    """Columns the curated table is partitioned by (lake sinks)."""
    contract: Path | dict[str, Any] | None = None
    """Data contract the rows must meet: a path to a YAML file (relative to the pipeline file)
    or the contract inline as a mapping (format: `docs/contracts.md`). Kept as written; the
    loaded contract is `PipelineConfig.contract(table)`."""
    output_contract: Path | dict[str, Any] | None = None
    """Contract the transformed rows must meet before they are loaded (same format as
    `contract`, plus batch expectations); rows that break it go to the failed store. The
    loaded contract is `PipelineConfig.output_contract(table)`."""

    _loaded: dict[str, Contract] = PrivateAttr(default_factory=dict)
    """Loaded contracts by field name (`contract`, `output_contract`)."""

    @field_validator("contract", "output_contract", mode="before")
    @classmethod
    def _contract(cls, value: Any, info: ValidationInfo) -> Any:
        if value is None or isinstance(value, dict):
            return value
        if not isinstance(value, str | Path):
            raise ValueError("expected a path to a contract file or an inline contract mapping")
        path = _resolve(Path(value), info)
        if info.context is not None and not path.is_file():
            raise ValueError("no such contract file (relative paths start at the pipeline file)")
        return path

    @model_validator(mode="after")
    def _cursor_fits_mode(self) -> TableConfig:
        if self.mode == "incremental" and self.cursor is None:
            raise conflict(
                "mode `incremental` needs `cursor`, the column that grows with every change"
                " (e.g. `cursor: updated_at`)",
                "cursor",
            )
        if self.mode == "full" and self.cursor is not None:
            raise conflict(
                "`cursor` is set but mode is `full` (the default); add `mode: incremental`"
                " or remove `cursor`",
                "cursor",
            )
        if self.mode == "full" and "lag_seconds" in self.model_fields_set:
            raise conflict(
                "`lag_seconds` is set but mode is `full` (the default), which reads every"
                " row each run; add `mode: incremental` or remove `lag_seconds`",
                "lag_seconds",
            )
        repeated = sorted({c for c in self.primary_key if self.primary_key.count(c) > 1})
        if repeated:
            raise conflict(
                f"column `{repeated[0]}` is named twice in `primary_key`; list each column once",
                "primary_key",
            )
        return self


class ManagedKafkaConfig(_Model):
    """``kafka.managed:`` — the local broker DataPlump runs when no cluster is given."""

    port: Port = 9092
    """Port the managed broker listens on, on 127.0.0.1."""
    data_dir: Path = Field(Path(".dataplump/kafka"), validate_default=True)
    """Folder for the managed broker's logs and metadata (relative to the pipeline file)."""

    _data_dir = field_validator("data_dir")(_resolve)


class TopicConfig(_Model):
    """``kafka.topic:`` — settings for the topics DataPlump creates."""

    partitions: Annotated[int, Field(gt=0, le=10_000)] = 1
    """Partitions per topic; the most consumers of one stage that can work in parallel."""
    replication_factor: Annotated[int, Field(gt=0, le=1000)] = 1
    """Copies of each partition; at most the number of brokers."""
    framing: Literal["row", "arrow"] = "row"
    """How valid rows travel on the active and processed topics: `row`, one JSON record
    per row (what any Kafka tool reads), or `arrow`, many rows per record as an
    LZ4-compressed Arrow IPC frame (about ten times cheaper a row; dead-letter and failed
    records stay one per row). The DuckDB engine and the loader read both; the Spark
    engine only `row`."""


class KafkaConfig(_Model):
    """``kafka:`` — the Kafka cluster: an existing one, or the managed local broker."""

    bootstrap_servers: OptionalStr = None
    """`host:port[,host:port...]` of an existing cluster; DataPlump then starts no broker.
    Unset or empty: the managed local broker is used."""
    managed: ManagedKafkaConfig = Field(default_factory=dict, validate_default=True)
    """The managed local broker, used when `bootstrap_servers` is unset."""
    topic: TopicConfig = Field(default_factory=dict, validate_default=True)
    """Settings for the topics DataPlump creates."""
    security_protocol: SecurityProtocol = "PLAINTEXT"
    """How clients talk to the brokers: PLAINTEXT, SSL, SASL_PLAINTEXT or SASL_SSL."""
    sasl_mechanism: SaslMechanism | None = None
    """SASL mechanism (PLAIN, SCRAM-SHA-256, SCRAM-SHA-512); required for SASL protocols."""
    sasl_username: OptionalStr = None
    """SASL user name; required for SASL protocols."""
    sasl_password: OptionalSecret = None
    """SASL password; required for SASL protocols. Secret."""
    ssl_ca_location: Path | None = None
    """PEM file of the CA certificate(s) the brokers' TLS certificates are checked against
    (relative to the pipeline file); librdkafka's `ssl.ca.location`. Unset: the system's
    trusted CAs. Only with SSL or SASL_SSL."""
    extra: dict[str, Annotated[str, BeforeValidator(_to_property)]] = Field(
        default_factory=dict, repr=False
    )
    """Raw librdkafka properties added to every client (e.g. `ssl.ca.location`); values of
    properties whose name mentions a password, secret or token are masked in dumps."""

    @field_serializer("extra")
    def _mask_extra(self, extra: dict[str, str]) -> dict[str, str]:
        return {key: MASK if _SECRET_PROPERTY.search(key) else v for key, v in extra.items()}

    @property
    def is_managed(self) -> bool:
        """True when DataPlump runs the local broker (no `bootstrap_servers`)."""
        return self.bootstrap_servers is None

    @field_validator("ssl_ca_location", mode="before")
    @classmethod
    def _ca_file(cls, value: Any, info: ValidationInfo) -> Any:
        value = _blank_to_none(value)
        if value is None or not isinstance(value, str | Path):
            return value
        path = _resolve(Path(value), info)
        # Checked here, so a wrong path is a config error at its line, not a TLS failure
        # librdkafka reports later as "certificate verify failed".
        if not path.is_file():
            raise ValueError(f"no such CA file: {path} (relative paths start at the pipeline file)")
        return path

    @model_validator(mode="after")
    def _tls_only_with_ssl(self) -> KafkaConfig:
        if self.ssl_ca_location is not None and not self.security_protocol.endswith("SSL"):
            raise conflict(
                f"`ssl_ca_location` is set but security_protocol is `{self.security_protocol}`;"
                " use SSL or SASL_SSL, or remove `ssl_ca_location`",
                "ssl_ca_location",
            )
        return self

    @model_validator(mode="after")
    def _sasl_complete(self) -> KafkaConfig:
        sasl = {
            "sasl_mechanism": self.sasl_mechanism,
            "sasl_username": self.sasl_username,
            "sasl_password": self.sasl_password,
        }
        if self.security_protocol.startswith("SASL_"):
            missing = [key for key, value in sasl.items() if value is None]
            if missing:
                raise conflict(
                    f"security_protocol `{self.security_protocol}` needs "
                    + ", ".join(f"`{key}`" for key in missing),
                    missing[0],
                )
        elif given := [key for key, value in sasl.items() if value is not None]:
            raise conflict(
                f"`{given[0]}` is set but security_protocol is `{self.security_protocol}`;"
                " use SASL_PLAINTEXT or SASL_SSL, or remove the sasl_* keys",
                given[0],
            )
        return self

    def client_config(self, bootstrap_servers: str | None = None) -> dict[str, str]:
        """librdkafka client properties: bootstrap servers, security, then `extra`.

        ``bootstrap_servers`` is the managed broker's address, used only when
        ``kafka.bootstrap_servers`` is unset. The result holds the SASL password in
        clear text, for the client; never print it.
        """
        servers = self.bootstrap_servers or bootstrap_servers
        if servers is None:
            raise ValueError("kafka.bootstrap_servers is unset; pass the managed broker's address")
        conf = {"bootstrap.servers": servers, "security.protocol": self.security_protocol}
        if self.sasl_mechanism and self.sasl_username and self.sasl_password:
            conf["sasl.mechanism"] = self.sasl_mechanism
            conf["sasl.username"] = self.sasl_username
            conf["sasl.password"] = self.sasl_password.get_secret_value()
        if self.ssl_ca_location is not None:
            conf["ssl.ca.location"] = str(self.ssl_ca_location)
        return conf | self.extra


class SparkConfig(_Model):
    """``transform.spark:`` — the Spark session used when `engine: spark`."""

    master: str = "local[*]"
    """Spark master URL: `local[*]` runs in-process, `spark://host:7077` on a cluster."""
    batch_records: int = Field(default=100_000, ge=1, le=100_000_000)
    """Most active records one micro-batch reads, all tables together
    (`maxOffsetsPerTrigger`); each micro-batch is one Kafka transaction."""
    trigger_seconds: float = Field(default=1.0, ge=0.1, le=3600)
    """How often a continuous run starts a micro-batch when there is new data."""
    shuffle_partitions: int = Field(default=4, ge=1, le=100_000)
    """`spark.sql.shuffle.partitions`: the partitions of a join, a group or a dedupe
    (Spark's 200 suits a cluster, not a batch of a few thousand rows)."""
    ui: bool = True
    """Run the Spark UI (its address is printed) on 127.0.0.1."""
    log_level: Literal["ERROR", "WARN", "INFO", "DEBUG"] = "WARN"
    """Spark's own log level."""
    packages: list[str] = Field(default_factory=list)
    """More Maven coordinates for `spark.jars.packages` (Spark's Kafka source and the
    source database's JDBC driver are added on their own)."""
    conf: dict[str, str] = Field(default_factory=dict)
    """Any other Spark setting, as `spark.<name>: value` (applied last)."""

    @field_validator("conf")
    @classmethod
    def _spark_names(cls, conf: dict[str, str]) -> dict[str, str]:
        bad = [name for name in conf if not name.startswith("spark.")]
        if bad:
            raise ValueError(f"Spark settings start with `spark.`: {', '.join(bad)}")
        return conf


_REFERENCE_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,62}")
_REFERENCE_KINDS = ("table", "csv", "parquet", "delta")


class ReferenceConfig(_Model):
    """One entry of ``transform.references:`` — a lookup table SQL steps can join.

    Exactly one of `table`, `csv`, `parquet` and `delta` says where it comes from::

        references:
          customers: {table: customers, refresh_seconds: 300}
          countries: {csv: ref/countries.csv}
    """

    table: OptionalStr = None
    """A table (or view) of the source database (`source.url`), read whole."""
    db_schema: OptionalStr = Field(None, alias="schema")
    """Schema of `table` (key `schema`); default: `source.schema`."""
    key: Annotated[tuple[str, ...], BeforeValidator(_as_list), Field(min_length=1)] | None = None
    """Key column(s) of `table`, used to read it in a fixed order; default: the table's
    `primary_key` under `tables:`, required when the table is not listed there."""
    csv: Path | None = None
    """A CSV file with a header line (relative to the pipeline file); types are inferred."""
    parquet: Path | None = None
    """A Parquet file (relative to the pipeline file)."""
    delta: Path | None = None
    """A Delta Lake table's folder (relative to the pipeline file); its latest version."""
    refresh_seconds: float | None = Field(None, gt=0, allow_inf_nan=False)
    """Reload the reference when it is older than this many seconds (checked when a batch
    is transformed); unset: load it once and keep it."""
    refresh_on_miss: bool = True
    """When rows of a batch fail and this reference's copy was loaded before they were
    extracted (a customer inserted just before its order), reload it and redo the batch
    once: only rows that still fail are failed. False: a miss fails the row at once."""
    min_refresh_seconds: Annotated[Seconds, Field(le=30)] = 1.0
    """At most one reload on a miss per this many seconds (counting from the last load);
    a batch that needs one sooner waits for it, so keep it below the Kafka transaction
    timeout (at most 30)."""

    @field_validator("csv", "parquet", "delta")
    @classmethod
    def _file(cls, path: Path, info: ValidationInfo) -> Path:
        path = _resolve(path, info)
        exists = path.is_dir() if info.field_name == "delta" else path.is_file()
        if info.context is not None and not exists:
            what = "Delta table folder" if info.field_name == "delta" else "file"
            raise ValueError(f"no such {what} (relative paths start at the pipeline file)")
        return path

    @model_validator(mode="after")
    def _one_kind(self) -> ReferenceConfig:
        given = [kind for kind in _REFERENCE_KINDS if getattr(self, kind) is not None]
        if len(given) != 1:
            found = f"found {', '.join(f'`{k}`' for k in given)}" if given else "found none"
            raise conflict(
                "a reference needs exactly one of `table`, `csv`, `parquet`, `delta`"
                f" ({found}), e.g. `customers: {{table: customers}}`",
                *given[1:2],
            )
        for key in ("db_schema", "key"):
            if getattr(self, key) is not None and self.table is None:
                shown = "schema" if key == "db_schema" else key
                raise conflict(f"`{shown}` is for `table` references; remove it", shown)
        return self

    @property
    def kind(self) -> str:
        """``table``, ``csv``, ``parquet`` or ``delta``."""
        return next(kind for kind in _REFERENCE_KINDS if getattr(self, kind) is not None)


def _reference_name_problem(name: str) -> str | None:
    if not _REFERENCE_NAME.fullmatch(name):
        return (
            f"reference name `{name}` is not a SQL name: use letters, digits and `_`,"
            " not starting with a digit"
        )
    if name.lower() == "batch":
        return (
            "`batch` is the name SQL steps see the incoming rows as; name the reference otherwise"
        )
    return None


class TransformConfig(_Model):
    """``transform:`` — steps that turn validated rows into curated rows."""

    engine: Engine = "duckdb"
    """Engine that runs the steps: `duckdb` (in-process) or `spark`."""
    spark: SparkConfig = Field(default_factory=dict, validate_default=True)
    """Spark settings, used when `engine: spark`."""
    references: dict[str, ReferenceConfig] = Field(default_factory=dict)
    """Lookup tables by name, loaded once and cached; SQL steps see each as a relation of
    that name (format: `docs/transform.md`)."""
    steps: dict[str, list[dict[str, Any]]] = Field(default_factory=dict)
    """Per table, the ordered list of transform steps, each a mapping with one key, the
    step's kind (`trim`, `cast`, `sql`, `pandas`, ...; format: `docs/transform.md`); tables
    must be listed under `tables`. Kept as written; the parsed steps are `steps_for(table)`."""

    _parsed: dict[str, tuple[Any, ...]] = PrivateAttr(default_factory=dict)

    @model_validator(mode="after")
    def _parse_steps(self, info: ValidationInfo) -> TransformConfig:
        """Parse every step; each problem is an error at its key (`steps.orders[2].cast`)."""
        from dataplump.engine.spec import parse_steps  # here: the engine imports pyarrow

        base = (info.context or {}).get("base_dir")
        errors: list[InitErrorDetails] = []
        for name in self.references:
            if message := _reference_name_problem(name):
                loc: tuple[str | int, ...] = ("references", name)
                errors.append(InitErrorDetails(type=conflict(message), loc=loc, input=name))
        for table, raw in self.steps.items():
            parsed, problems = parse_steps(raw, base, check_files=info.context is not None)
            self._parsed[table] = tuple(parsed)
            for problem in problems:
                loc = ("steps", table, *problem.path)
                errors.append(InitErrorDetails(type=conflict(problem.message), loc=loc, input=raw))
        if errors:
            raise ValidationError.from_exception_data("TransformConfig", errors)
        return self

    def steps_for(self, table: str) -> tuple[Any, ...]:
        """The parsed steps of ``table`` (:mod:`dataplump.engine.spec` models), in order;
        empty when the table has none."""
        return self._parsed.get(table, ())


_S3_URL = re.compile(r"s3://(?P<bucket>[a-z0-9][a-z0-9.-]{1,61}[a-z0-9])(?:/(?P<prefix>.*))?")
_URL_SCHEME = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*://")


def is_s3_url(path: Path | str) -> bool:
    """True for a lake ``path`` that is an ``s3://bucket/prefix`` URL (kept as text)."""
    return isinstance(path, str) and path.startswith("s3://")


def _lake_path(value: Any, info: ValidationInfo) -> Any:
    """A local folder (resolved like every path) or an ``s3://bucket/prefix`` URL (kept as
    text, without a trailing `/`)."""
    if isinstance(value, str) and _URL_SCHEME.match(value):
        match = _S3_URL.fullmatch(value.rstrip("/"))
        if match is None:
            raise ValueError(
                "expected a local folder or `s3://bucket/prefix` (bucket: 3-63 lower-case"
                " letters, digits, `.` or `-`); other URL schemes are not supported"
            )
        prefix = (match["prefix"] or "").strip("/")
        if "//" in prefix:
            raise ValueError("an S3 prefix cannot hold an empty folder name (`//`)")
        return f"s3://{match['bucket']}/{prefix}" if prefix else f"s3://{match['bucket']}"
    if isinstance(value, str | Path):
        return _resolve(Path(value), info)
    return value


class S3Config(_Model):
    """``sinks.<name>.s3:`` — how a `delta` or `parquet` sink reaches an `s3://` path.

    Unset keys fall back to the standard AWS environment variables (`AWS_ACCESS_KEY_ID`,
    `AWS_SECRET_ACCESS_KEY`, `AWS_SESSION_TOKEN`, `AWS_REGION`, `AWS_ENDPOINT_URL`)."""

    endpoint_url: OptionalStr = None
    """URL of an S3-compatible server (`http://127.0.0.1:9000` for MinIO); default: AWS."""
    region: OptionalStr = None
    """Region of the bucket (default: `AWS_REGION`, else `us-east-1`)."""
    access_key_id: OptionalStr = None
    """Access key id (default: `AWS_ACCESS_KEY_ID`)."""
    secret_access_key: OptionalSecret = None
    """Secret access key (default: `AWS_SECRET_ACCESS_KEY`). Secret."""
    session_token: OptionalSecret = None
    """Session token of temporary credentials (default: `AWS_SESSION_TOKEN`). Secret."""
    allow_http: bool = False
    """Allow a plain `http://` `endpoint_url` (a local test server); refused otherwise."""

    @model_validator(mode="after")
    def _consistent(self) -> S3Config:
        if self.endpoint_url is not None:
            if not re.match(r"https?://[^/\s]+", self.endpoint_url):
                raise conflict(
                    "expected a URL such as `https://s3.example.com` or `http://127.0.0.1:9000`",
                    "endpoint_url",
                )
            if self.endpoint_url.startswith("http://") and not self.allow_http:
                raise conflict(
                    "a plain `http://` endpoint sends data unencrypted; use `https://`, or set"
                    " `allow_http: true` for a local test server",
                    "endpoint_url",
                )
        if (self.access_key_id is None) != (self.secret_access_key is None):
            given, missing = (
                ("access_key_id", "secret_access_key")
                if self.secret_access_key is None
                else ("secret_access_key", "access_key_id")
            )
            raise conflict(
                f"`{given}` needs `{missing}` too (or leave both to the environment)", missing
            )
        return self


class SinkConfig(_Model):
    """One entry of ``sinks:`` — a place curated rows are committed to, exactly once."""

    kind: SinkKind = "delta"
    """`delta` (Delta Lake tables), `parquet` (Parquet files) or `postgres` (a warehouse)."""
    path: Annotated[Path | str, BeforeValidator(_lake_path)] = Field(
        Path(".dataplump/lake"), validate_default=True
    )
    """Where the lake lives for `delta` and `parquet`: a folder (relative to the pipeline
    file) or an `s3://bucket/prefix` URL (see `s3`)."""
    s3: S3Config | None = None
    """How to reach an `s3://` path: endpoint, region, credentials (see `S3Config`)."""
    url: Annotated[DatabaseUrl | None, BeforeValidator(_blank_to_none)] = None
    """SQLAlchemy URL of the warehouse; required for `postgres`. Secret: password masked."""
    mode: SinkMode = "merge"
    """`merge`: upsert by primary key (the newest version of a row wins); `append`: add
    every row. `parquet` sinks only append (their default)."""
    db_schema: OptionalStr = Field(None, alias="schema")
    """Database schema of the curated tables, for `postgres` (default: `public`)."""
    allow_type_changes: bool = False
    """Let a column's type change in the curated table (rewrites the table); otherwise a
    changed type is refused with a clear message. A new nullable column is always added."""

    @property
    def on_s3(self) -> bool:
        """True when ``path`` is an ``s3://`` URL."""
        return is_s3_url(self.path)

    @model_validator(mode="after")
    def _fits_kind(self) -> SinkConfig:
        if self.s3 is not None and not self.on_s3:
            raise conflict(
                "`s3` is for a `delta` or `parquet` sink whose `path` is an `s3://bucket/prefix`"
                " URL; remove it, or set `path` to an S3 URL",
                "s3",
            )
        if self.kind == "postgres":
            if self.url is None:
                raise conflict(
                    "a `postgres` sink needs `url`, e.g. `postgresql+psycopg://user:pw@host/dw`",
                    "url",
                )
            if "path" in self.model_fields_set:
                raise conflict("`path` is for `delta` and `parquet` sinks; remove it", "path")
        elif self.url is not None:
            raise conflict(
                f"`url` is for `postgres` sinks; a `{self.kind}` sink writes under `path`", "url"
            )
        elif self.db_schema is not None:
            raise conflict(f"`schema` is for `postgres` sinks, not `{self.kind}`", "schema")
        if self.kind == "parquet":
            if "mode" not in self.model_fields_set:
                object.__setattr__(self, "mode", "append")  # the default that fits the kind
            elif self.mode == "merge":
                raise conflict(
                    "a `parquet` sink only appends (plain files cannot be upserted); use"
                    " `mode: append`, or a `delta` sink to merge",
                    "mode",
                )
        return self


class LogChannel(_Model):
    """Alerts written to DataPlump's log."""

    kind: Literal["log"] = "log"
    """Channel kind."""


class WebhookChannel(_Model):
    """Alerts POSTed as JSON to a URL."""

    kind: Literal["webhook"] = "webhook"
    """Channel kind."""
    url: SecretStr
    """URL to POST alerts to. Secret (it often carries a token)."""

    name: OptionalStr = None
    """Name of the channel in logs and reports; default: its kind (`webhook`, `webhook#2`)."""
    owners: tuple[str, ...] | None = None
    """Deliver only alerts owned by one of these (contract, column or rule `owner`);
    default: every alert."""


class SlackChannel(_Model):
    """Alerts posted to a Slack channel through an incoming webhook."""

    kind: Literal["slack"] = "slack"
    """Channel kind."""
    webhook_url: SecretStr
    """Slack incoming-webhook URL (`https://hooks.slack.com/services/...`). Secret."""

    name: OptionalStr = None
    """Name of the channel in logs and reports; default: its kind (`webhook`, `webhook#2`)."""
    owners: tuple[str, ...] | None = None
    """Deliver only alerts owned by one of these (contract, column or rule `owner`);
    default: every alert."""


class EmailChannel(_Model):
    """Alerts sent by e-mail through an SMTP server."""

    kind: Literal["email"] = "email"
    """Channel kind."""
    smtp_host: str
    """SMTP server host name."""
    smtp_port: Port = 587
    """SMTP server port (587: submission with STARTTLS)."""
    username: OptionalStr = None
    """SMTP user name, if the server needs a login."""
    password: OptionalSecret = None
    """SMTP password. Secret."""
    sender: str = Field(alias="from")
    """Sender address (key `from`)."""
    to: tuple[str, ...] = Field(min_length=1)
    """Recipient addresses."""

    name: OptionalStr = None
    """Name of the channel in logs and reports; default: its kind (`webhook`, `webhook#2`)."""
    owners: tuple[str, ...] | None = None
    """Deliver only alerts owned by one of these (contract, column or rule `owner`);
    default: every alert."""


Channel = Annotated[
    LogChannel | WebhookChannel | SlackChannel | EmailChannel, Field(discriminator="kind")
]


class GroupingConfig(_Model):
    """``notify.grouping:`` — when an incident (alerts of one table, stage and problem)
    notifies, in the way Grafana's alert grouping works."""

    group_wait: Seconds = 30.0
    """A new incident waits this long for more events before its first notification."""
    group_interval: Seconds = 300.0
    """At most one update per incident per this interval."""
    repeat_interval: Seconds = 4 * 3600.0
    """An open incident is notified again after this long without a notification."""
    resolve_after: Seconds = 3600.0
    """An incident without events for this long is resolved (one last notification).
    Make it longer than the gap between runs of a batch pipeline."""


class NotifyConfig(_Model):
    """``notify:`` — where alerts about rejected rows and failures go."""

    channels: tuple[Channel, ...] = (LogChannel(),)
    """Channels, each chosen by `kind`: `log`, `webhook`, `slack` or `email`."""
    grouping: GroupingConfig = Field(default_factory=dict, validate_default=True)
    """When incidents notify (group wait, update interval, repeat, resolve)."""

    @model_validator(mode="after")
    def _unique_names(self) -> NotifyConfig:
        seen: set[str] = set()
        for i, channel in enumerate(self.channels):
            name = getattr(channel, "name", None)
            if name is not None:
                if name in seen:
                    raise conflict(f"two channels are named `{name}`", "channels", i, "name")
                seen.add(name)
        return self


class ExtractConfig(_Model):
    """``extract:`` — how the extraction stage runs."""

    poll_interval: Annotated[Seconds, Field(ge=0.1)] = 10.0
    """Time between reads of the source when `dataplump extract` runs without `--once`."""
    late_row_check_interval: Seconds = 300.0
    """How often each incremental table is counted for rows that appeared behind its
    watermark (a cursor that went back): on the first pass of every `extract` and then at
    this interval while it runs; `0` turns the check off."""


ChartKind = Literal["bar", "line", "area", "scatter", "pie", "donut", "table", "kpi"]
"""How a declared chart draws its rows."""
_SQL_START = re.compile(r"\s*(select|with|from)\b", re.IGNORECASE)
_AXIS_KINDS = ("bar", "line", "area", "scatter")


class ChartConfig(_Model):
    """One entry of ``present.charts:`` — a chart over the curated tables, drawn on the
    dashboard's Data page (and in reports)."""

    name: Annotated[str, AfterValidator(_check_name)]
    """Chart id, unique among the charts: 1-100 letters, digits, `_` or `-`."""
    sql: str = Field(min_length=1)
    """One DuckDB `SELECT` (or `WITH ... SELECT`) over the curated tables, each a view by
    its table name (`SELECT status, count(*) AS n FROM orders GROUP BY status`)."""
    kind: ChartKind = "bar"
    """`bar`, `line`, `area`, `scatter`, `pie`, `donut`, `table` or `kpi` (one number)."""
    title: OptionalStr = None
    """Title shown above the chart; default: the name."""
    x: OptionalStr = None
    """Column on the x axis (the category of `pie`/`donut`); required for every kind but
    `table` and `kpi`."""
    y: OptionalStr = None
    """Column on the y axis (the value of `pie`/`donut`/`kpi`); required for every kind but
    `table`."""
    color: OptionalStr = None
    """Column that colours the marks (a series per value)."""
    columns: tuple[str, ...] | None = None
    """`table` only: the columns shown, in order (default: all)."""
    limit: Annotated[int, Field(gt=0, le=100_000)] = 5000
    """At most this many rows of the query are drawn."""
    description: OptionalStr = None
    """A sentence under the title saying what the chart shows."""

    @field_validator("sql")
    @classmethod
    def _one_select(cls, sql: str) -> str:
        body = sql.strip().rstrip(";").strip()
        if not _SQL_START.match(body):
            raise ValueError("expected one `SELECT` (or `WITH ... SELECT`) over curated tables")
        if ";" in body:
            raise ValueError("expected one statement; remove the `;` inside the query")
        return body

    @model_validator(mode="after")
    def _fields_fit_kind(self) -> ChartConfig:
        if self.kind in (*_AXIS_KINDS, "pie", "donut"):
            for key in ("x", "y"):
                if getattr(self, key) is None:
                    raise conflict(
                        f"a `{self.kind}` chart needs `{key}`: a column of the query", key
                    )
        if self.kind == "kpi" and self.y is None:
            raise conflict("a `kpi` chart needs `y`: the column holding the number", "y")
        if self.columns is not None and self.kind != "table":
            raise conflict(f"`columns` is for `table` charts, not `{self.kind}`", "columns")
        return self


ReportFormat = Literal["html", "pdf", "md"]
"""A report's file format: one self-contained HTML page, a paginated PDF, or Markdown
(with its charts as PNG files beside it)."""
_EMAIL = re.compile(r"[^@\s/\\]+@[^@\s/\\]+\.[^@\s/\\]+")
MIN_REPORT_EVERY = 10.0
"""Seconds: the shortest `every` of a scheduled report."""


class ReportSchedule(_Model):
    """One entry of ``present.reports:`` — a report `dataplump run` writes to a folder or
    e-mails, every `every`, over the period that just ended."""

    every: Annotated[Seconds, Field(ge=MIN_REPORT_EVERY)]
    """How often (`1d`, `12h`, `7d`; at least 10 s). Periods are aligned to whole
    multiples of it since 1970-01-01 UTC: `1d` reports cover UTC days, written just after
    midnight UTC."""
    to: str = Field(min_length=1)
    """A folder (made if missing; relative to the pipeline file) or an e-mail address
    (sent through the first `email` channel of `notify.channels`, the report attached)."""
    format: ReportFormat = "pdf"
    """`pdf`, `html` (one self-contained file) or `md` (Markdown, charts as PNG files)."""
    since: Annotated[Seconds, Field(gt=0)] | None = None
    """Length of the period a report covers, ending at its due time; default: `every`."""
    tables: tuple[str, ...] | None = None
    """Only these tables (default: all)."""
    name: Annotated[str, AfterValidator(_check_name)] = "report"
    """Start of the file names (`report-2026-11-27.pdf`) and of the e-mail subject."""

    @property
    def is_email(self) -> bool:
        """Whether `to` is an e-mail address (else a folder)."""
        return _EMAIL.fullmatch(self.to.strip()) is not None

    @property
    def folder(self) -> Path:
        """`to` as a folder (only meaningful when not :attr:`is_email`)."""
        return Path(self.to)

    @property
    def period(self) -> float:
        """Seconds a report covers: `since`, else `every`."""
        return self.since if self.since is not None else self.every

    @property
    def key(self) -> str:
        """Identity of the schedule in the remembered state (when it last ran)."""
        return f"{self.name}:{self.format}:{self.to}:{self.every:g}:{self.period:g}"

    @field_validator("to", mode="after")
    @classmethod
    def _resolve_folder(cls, value: str, info: ValidationInfo) -> str:
        value = value.strip()
        if "@" in value and "/" not in value and "\\" not in value:
            if _EMAIL.fullmatch(value) is None:
                raise ValueError(f"`{value}` is neither a folder path nor an e-mail address")
            return value
        return str(_resolve(Path(value), info))


class PresentConfig(_Model):
    """``present:`` — the dashboard web app (`dataplump serve`) and reports."""

    host: str = "127.0.0.1"
    """Interface the dashboard listens on (`0.0.0.0`: every interface; set `auth_token`)."""
    port: Port = 8050
    """Port the dashboard listens on."""
    auth_token: OptionalSecret = None
    """Token a browser must present; none means no login. Secret."""
    refresh_seconds: Annotated[Seconds, Field(ge=1)] = 30.0
    """The dashboard re-reads the lake and the ledger at most this often."""
    quarantine_warning: Annotated[float, Field(ge=0, le=1)] = 0.05
    """A chart over a table whose share of rejected rows (dead-letter + failed, of rows
    read) is above this gets a warning beside it (as does a table with open incidents)."""
    charts: tuple[ChartConfig, ...] = ()
    """Charts of the Data page, each a SQL query over the curated tables and how to draw it."""
    reports: tuple[ReportSchedule, ...] = ()
    """Reports `dataplump run` writes or e-mails on a schedule (`dataplump report` makes
    one now)."""

    @model_validator(mode="after")
    def _unique_chart_names(self) -> PresentConfig:
        seen: set[str] = set()
        for i, chart in enumerate(self.charts):
            if chart.name in seen:
                raise conflict(f"two charts are named `{chart.name}`", "charts", i, "name")
            seen.add(chart.name)
        return self

    @model_validator(mode="after")
    def _distinct_reports(self) -> PresentConfig:
        seen: set[str] = set()
        for i, report in enumerate(self.reports):
            if report.key in seen:
                raise conflict("two reports are scheduled alike; give one a `name`", "reports", i)
            seen.add(report.key)
        return self


class PipelineConfig(_Model):
    """A whole pipeline file, ``dataplump.yaml``."""

    pipeline: PipelineSection
    """What this pipeline is called."""
    source: SourceConfig
    """The SQL database rows are extracted from."""
    tables: dict[Annotated[str, AfterValidator(_check_table_name)], TableConfig] = Field(
        min_length=1
    )
    """Source tables to move, by name (at least one)."""
    kafka: KafkaConfig = Field(default_factory=dict, validate_default=True)
    """The Kafka cluster, or the managed local broker."""
    extract: ExtractConfig = Field(default_factory=dict, validate_default=True)
    """How the extraction stage runs."""
    transform: TransformConfig = Field(default_factory=dict, validate_default=True)
    """Transform engine and steps."""
    sinks: dict[Annotated[str, AfterValidator(_check_name)], SinkConfig] = Field(
        default_factory=lambda: {"lake": {}}, validate_default=True, min_length=1
    )
    """Where curated rows are committed, by name (default: one Delta lake, `lake`). The
    ops tables (`_dlq`, `_failed`, `_alerts`, `_runs`) go to the first one."""
    notify: NotifyConfig = Field(default_factory=dict, validate_default=True)
    """Where alerts go."""
    present: PresentConfig = Field(default_factory=dict, validate_default=True)
    """The dashboard web app."""

    @property
    def name(self) -> str:
        """The pipeline name."""
        return self.pipeline.name

    def contract(self, table: str) -> Contract | None:
        """The loaded data contract of ``table``, or None if it has none.

        Contracts are loaded and checked when the config is validated (``load_config``),
        so this only fails for a contract file that went missing since, or an unknown
        table; it raises :class:`~dataplump.errors.ConfigError` then.
        """
        return self._table_contract(table, "contract")

    def output_contract(self, table: str) -> Contract | None:
        """The loaded output contract of ``table`` (checked after the transformation)."""
        return self._table_contract(table, "output_contract")

    def _table_contract(self, table: str, which: str) -> Contract | None:
        from dataplump.contracts import Contract  # here: it imports pyarrow and DuckDB

        if table not in self.tables:
            close = get_close_matches(table, self.tables, n=1)
            hint = f"did you mean `{close[0]}`? " if close else ""
            raise ConfigError(
                f"no table `{table}` in the config; {hint}(tables: {', '.join(self.tables)})"
            )
        config = self.tables[table]
        value = getattr(config, which)
        if which not in config._loaded and value is not None:
            config._loaded[which] = Contract.from_config(table, value)
        return config._loaded.get(which)

    @field_validator("tables", mode="after")
    @classmethod
    def _load_contracts(
        cls, tables: dict[str, TableConfig], info: ValidationInfo
    ) -> dict[str, TableConfig]:
        """Load each table's contract; its problems become errors located in the pipeline
        file (inline contract) or naming the contract file and line."""
        from dataplump.contracts import Contract, ContractError

        base = (info.context or {}).get("base_dir")
        errors: list[InitErrorDetails] = []
        for name, table in tables.items():
            for which in ("contract", "output_contract"):
                value = getattr(table, which)
                if value is None or (isinstance(value, Path) and not value.is_file()):
                    continue  # a missing file is reported by TableConfig (with a context)
                try:
                    table._loaded[which] = Contract.from_config(name, value)
                except ContractError as exc:
                    for problem in exc.problems:
                        loc: tuple[str | int, ...] = (name, which, *problem.path)
                        message = problem.message
                        if exc.file is not None:
                            shown = exc.file
                            if base is not None and exc.file.is_relative_to(base):
                                shown = exc.file.relative_to(base)
                            where = f"{shown}:{problem.line or 1}:{problem.column or 1}"
                            loc = (name, which)
                            message = f"{where}: {problem.key or '(file)'}: {message}"
                        errors.append(
                            InitErrorDetails(type=conflict(message), loc=loc, input=value)
                        )
        if errors:
            raise ValidationError.from_exception_data("PipelineConfig", errors)
        return tables

    @model_validator(mode="after")
    def _tables_name_sinks(self) -> PipelineConfig:
        for name, table in self.tables.items():
            for sink in table.sinks or ():
                if sink not in self.sinks:
                    close = get_close_matches(sink, self.sinks, n=1)
                    hint = f"did you mean `{close[0]}`? " if close else ""
                    raise conflict(
                        f"no sink `{sink}` under `sinks`; {hint}(sinks: {', '.join(self.sinks)})",
                        "tables",
                        name,
                        "sinks",
                    )
        return self

    def sinks_of(self, table: str) -> dict[str, SinkConfig]:
        """The sinks ``table`` is loaded into, by name."""
        names = self.tables[table].sinks
        return {n: s for n, s in self.sinks.items() if names is None or n in names}

    @property
    def ops_sink(self) -> tuple[str, SinkConfig]:
        """The sink holding the ops tables: the first of `sinks`."""
        return next(iter(self.sinks.items()))

    @model_validator(mode="after")
    def _framing_fits_the_engine(self) -> PipelineConfig:
        if self.kafka.topic.framing == "arrow" and self.transform.engine == "spark":
            raise conflict(
                "the Spark engine reads one JSON record per row; with `transform.engine:"
                " spark` set `kafka.topic.framing: row` (the default)",
                "kafka",
                "topic",
                "framing",
            )
        return self

    @model_validator(mode="after")
    def _steps_name_tables(self) -> PipelineConfig:
        unknown = [table for table in self.transform.steps if table not in self.tables]
        if unknown:
            close = get_close_matches(unknown[0], self.tables, n=1)
            hint = f"did you mean `{close[0]}`? " if close else ""
            raise conflict(
                f"steps for unknown table `{unknown[0]}`; {hint}(tables: {', '.join(self.tables)})",
                "transform",
                "steps",
                unknown[0],
            )
        return self

    @model_validator(mode="after")
    def _reports_fit(self) -> PipelineConfig:
        """A report sent by e-mail needs an `email` channel; its tables must exist."""
        has_email = any(isinstance(c, EmailChannel) for c in self.notify.channels)
        for i, report in enumerate(self.present.reports):
            if report.is_email and not has_email:
                raise conflict(
                    f"a report to `{report.to}` is sent through an `email` channel of"
                    " `notify.channels` (its SMTP server and `from`); add one, or write"
                    " the report to a folder",
                    "present",
                    "reports",
                    i,
                    "to",
                )
            for table in report.tables or ():
                if table not in self.tables:
                    close = get_close_matches(table, self.tables, n=1)
                    hint = f"did you mean `{close[0]}`? " if close else ""
                    raise conflict(
                        f"no table `{table}`; {hint}(tables: {', '.join(self.tables)})",
                        "present",
                        "reports",
                        i,
                        "tables",
                    )
        return self

    def redacted_dump(self) -> dict[str, Any]:
        """The config as plain YAML/JSON data, keys as in the file, secrets masked."""
        data: dict[str, Any] = self.model_dump(mode="json", by_alias=True)
        return data
