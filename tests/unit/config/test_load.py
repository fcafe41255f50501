"""load_config: the example, ${VAR} interpolation, DATAPLUMP__ overrides, paths, models."""

from __future__ import annotations

import doctest
from pathlib import Path

import pytest
from pydantic import BaseModel, ValidationError

import dataplump.config
from dataplump.config import (
    InvalidConfigError,
    KafkaConfig,
    PipelineConfig,
    TableConfig,
    load_config,
)
from dataplump.config import models as config_models
from tests.unit.config.helpers import EXAMPLE, MINIMAL, ROOT, write


def test_example_loads() -> None:
    config = load_config(EXAMPLE, env={})
    assert config.name == "shop"
    assert config.source.masked_url() == "sqlite:///demo.db"
    assert config.tables["orders"].mode == "incremental"
    assert config.tables["orders"].cursor == "updated_at"
    assert config.tables["customers"].primary_key == ("id",)
    assert config.kafka.is_managed
    assert config.present.auth_token is None  # ${DASHBOARD_TOKEN:-} is empty: unset


def test_defaults(tmp_path: Path) -> None:
    config = load_config(write(tmp_path, MINIMAL), env={})
    table = config.tables["orders"]
    assert (table.mode, table.cursor, table.lag_seconds, table.batch_size) == (
        "full",
        None,
        0,
        10_000,
    )
    assert config.kafka.bootstrap_servers is None
    assert (config.kafka.managed.port, config.kafka.topic.partitions) == (9092, 1)
    assert config.transform.engine == "duckdb"
    assert config.transform.spark.master == "local[*]"
    assert list(config.sinks) == ["lake"]
    assert (config.sinks["lake"].kind, config.sinks["lake"].mode) == ("delta", "merge")
    assert config.sinks_of("orders") == config.sinks
    assert [channel.kind for channel in config.notify.channels] == ["log"]
    assert (config.present.host, config.present.port) == ("127.0.0.1", 8050)


def test_relative_paths_resolve_against_the_file(tmp_path: Path) -> None:
    (tmp_path / "conf" / "contracts").mkdir(parents=True)
    (tmp_path / "conf" / "contracts" / "orders.yaml").write_text("columns: {}\n")
    text = MINIMAL.replace(
        "{primary_key: id}", "{primary_key: id, contract: contracts/orders.yaml}"
    )
    text += "kafka: {managed: {data_dir: state/kafka}}\nsinks: {lake: {path: /abs/lake}}\n"
    config = load_config(write(tmp_path / "conf", text), env={})
    assert config.tables["orders"].contract == tmp_path / "conf" / "contracts" / "orders.yaml"
    assert config.kafka.managed.data_dir == tmp_path / "conf" / "state" / "kafka"
    assert config.sinks["lake"].path == Path("/abs/lake")


def test_default_paths_resolve_against_the_file(tmp_path: Path) -> None:
    config = load_config(write(tmp_path / "sub", MINIMAL), env={})
    assert config.kafka.managed.data_dir == tmp_path / "sub" / ".dataplump" / "kafka"
    assert config.sinks["lake"].path == tmp_path / "sub" / ".dataplump" / "lake"


@pytest.mark.parametrize(
    ("value", "env", "expected"),
    [
        ("${NAME}", {"NAME": "orders"}, "orders"),
        ("${NAME:-fallback}", {}, "fallback"),
        ("${NAME:-fallback}", {"NAME": ""}, "fallback"),
        ("${NAME:-fallback}", {"NAME": "set"}, "set"),
        ("${NAME}", {"NAME": ""}, ""),
        ("pre-${A}-${B:-b}-post", {"A": "a"}, "pre-a-b-post"),
        ("$${NAME}", {"NAME": "ignored"}, "${NAME}"),
        ("cost $5 and $$ and {braces}", {}, "cost $5 and $$ and {braces}"),
    ],
)
def test_interpolation(tmp_path: Path, value: str, env: dict[str, str], expected: str) -> None:
    text = MINIMAL + f"transform:\n  spark:\n    master: '{value}'\n"
    assert load_config(write(tmp_path, text), env=env).transform.spark.master == expected


def test_interpolated_numbers_are_typed(tmp_path: Path) -> None:
    text = MINIMAL + "present: {port: '${PORT:-8060}'}\n"
    assert load_config(write(tmp_path, text), env={}).present.port == 8060
    assert load_config(write(tmp_path, text), env={"PORT": "9000"}).present.port == 9000


def test_missing_variables_are_all_reported(tmp_path: Path) -> None:
    text = MINIMAL.replace("shop", "'${NAME}'") + "present: {host: '${HOST}', port: '${PORT}'}\n"
    with pytest.raises(InvalidConfigError) as caught:
        load_config(write(tmp_path, text), env={})
    found = {(i.path, i.line): i.message for i in caught.value.issues}
    assert set(found) == {("pipeline.name", 1), ("present.host", 5), ("present.port", 5)}
    assert "`PORT` is not set" in found["present.port", 5]


def test_interpolated_value_is_never_echoed(tmp_path: Path) -> None:
    text = MINIMAL + "present: {port: '${PORT}'}\n"
    with pytest.raises(InvalidConfigError) as caught:
        load_config(write(tmp_path, text), env={"PORT": "not-a-port"})
    assert str(caught.value).endswith("present.port: expected an integer, got '***'")
    assert "not-a-port" not in str(caught.value)


def test_overrides(tmp_path: Path) -> None:
    env = {
        "DATAPLUMP__KAFKA__BOOTSTRAP_SERVERS": "127.0.0.1:9092",
        "DATAPLUMP__TABLES__ORDERS__BATCH_SIZE": "500",
        "DATAPLUMP__tables__Orders__Primary_Key": "[tenant_id, id]",
        "DATAPLUMP__TABLES__ITEMS__PRIMARY_KEY": "sku",
        "DATAPLUMP__PRESENT__AUTH_TOKEN": "",
        "DATAPLUMP_CONFIG": "not an override",
    }
    config = load_config(write(tmp_path, MINIMAL), env=env)
    assert config.kafka.bootstrap_servers == "127.0.0.1:9092"
    assert not config.kafka.is_managed
    assert config.tables["orders"].batch_size == 500
    assert config.tables["orders"].primary_key == ("tenant_id", "id")
    assert config.tables["items"].primary_key == ("sku",)
    assert config.present.auth_token is None


def test_override_matches_existing_keys_case_insensitively(tmp_path: Path) -> None:
    text = MINIMAL.replace("orders:", "Orders:")
    env = {"DATAPLUMP__TABLES__ORDERS__BATCH_SIZE": "7"}
    assert load_config(write(tmp_path, text), env=env).tables["Orders"].batch_size == 7


def test_override_wins_over_interpolation(tmp_path: Path) -> None:
    text = MINIMAL + "present: {port: '${PORT}'}\n"
    config = load_config(write(tmp_path, text), env={"PORT": "x", "DATAPLUMP__PRESENT__PORT": "1"})
    assert config.present.port == 1


@pytest.mark.parametrize(
    ("var", "value", "path", "message"),
    [
        ("DATAPLUMP__TABLES__ORDERS__BATCH_SIZE", "-3", "tables.orders.batch_size", "> 0, got -3"),
        ("DATAPLUMP__KAFKAA__PORT", "1", "kafkaa", "did you mean `kafka`?"),
        ("DATAPLUMP__PIPELINE__NAME__FIRST", "x", "pipeline.name", "not a mapping"),
        ("DATAPLUMP__KAFKA____PORT", "1", "", "empty key"),
        ("DATAPLUMP__TABLES__ITEMS__MODE", "full", "tables.items.primary_key", "missing"),
    ],
)
def test_bad_override_names_the_variable(
    tmp_path: Path, var: str, value: str, path: str, message: str
) -> None:
    with pytest.raises(InvalidConfigError) as caught:
        load_config(write(tmp_path, MINIMAL), env={var: value})
    (issue,) = caught.value.issues
    assert (issue.env_var, issue.path, issue.line) == (var, path, None)
    assert message in issue.message
    assert str(issue).startswith(f"env {var}: ")


def test_all_problems_are_collected_and_str_is_capped(tmp_path: Path) -> None:
    tables = "".join(f"  t{i}: {{mode: full}}\n" for i in range(12))
    text = "pipeline: {name: shop}\nsource: {url: 'sqlite://'}\ntables:\n" + tables
    with pytest.raises(InvalidConfigError) as caught:
        load_config(write(tmp_path, text), env={})
    assert len(caught.value.issues) == 12
    lines = str(caught.value).splitlines()
    assert len(lines) == 11
    assert lines[-1] == "... and 2 more"
    assert lines[0].endswith(
        "dataplump.yaml:4:3: tables.t0.primary_key: missing required key `primary_key`"
    )


def test_file_problems(tmp_path: Path) -> None:
    with pytest.raises(InvalidConfigError, match="file not found"):
        load_config(tmp_path / "nope.yaml", env={})
    with pytest.raises(InvalidConfigError, match="cannot read the file"):
        load_config(tmp_path, env={})
    (tmp_path / "latin1.yaml").write_bytes(b"pipeline: {name: caf\xe9}\n")
    with pytest.raises(InvalidConfigError, match="not UTF-8"):
        load_config(tmp_path / "latin1.yaml", env={})


def test_anchors_and_merge_keys(tmp_path: Path) -> None:
    text = MINIMAL + "  items:\n    <<: &defaults {batch_size: 50}\n    primary_key: sku\n"
    assert load_config(write(tmp_path, text), env={}).tables["items"].batch_size == 50


def test_models_are_frozen_and_strict() -> None:
    table = TableConfig(primary_key="id")
    with pytest.raises(ValidationError):
        table.mode = "incremental"  # type: ignore[misc]
    with pytest.raises(ValidationError):
        TableConfig(primary_key="id", colour="red")  # type: ignore[call-arg]


def test_kafka_client_config() -> None:
    managed = KafkaConfig()
    assert managed.client_config("127.0.0.1:9092") == {
        "bootstrap.servers": "127.0.0.1:9092",
        "security.protocol": "PLAINTEXT",
    }
    with pytest.raises(ValueError, match="bootstrap_servers is unset"):
        managed.client_config()
    external = KafkaConfig.model_validate(
        {
            "bootstrap_servers": "k1:9093",
            "security_protocol": "SASL_SSL",
            "sasl_mechanism": "PLAIN",
            "sasl_username": "u",
            "sasl_password": "pw",
            "extra": {"enable.idempotence": True, "linger.ms": 5},
        }
    )
    assert external.client_config("ignored:1") == {
        "bootstrap.servers": "k1:9093",
        "security.protocol": "SASL_SSL",
        "sasl.mechanism": "PLAIN",
        "sasl.username": "u",
        "sasl.password": "pw",
        "enable.idempotence": "true",
        "linger.ms": "5",
    }


def test_sasl_keys_without_sasl_protocol_conflict(tmp_path: Path) -> None:
    text = MINIMAL + "kafka: {sasl_username: u}\n"
    with pytest.raises(InvalidConfigError, match=r"kafka\.sasl_username: `sasl_username` is set"):
        load_config(write(tmp_path, text), env={})


def test_ssl_ca_location_is_a_file_beside_the_pipeline(tmp_path: Path) -> None:
    (tmp_path / "tls").mkdir()
    (tmp_path / "tls" / "ca.pem").write_text("-----BEGIN CERTIFICATE-----\n")
    text = MINIMAL + (
        "kafka: {bootstrap_servers: 'k:9093', security_protocol: SSL,"
        " ssl_ca_location: tls/ca.pem}\n"
    )
    config = load_config(write(tmp_path, text), env={})
    assert config.kafka.ssl_ca_location == tmp_path / "tls" / "ca.pem"
    assert config.kafka.client_config()["ssl.ca.location"] == str(tmp_path / "tls" / "ca.pem")


def test_a_missing_ca_file_is_a_config_error(tmp_path: Path) -> None:
    text = MINIMAL + "kafka: {security_protocol: SSL, ssl_ca_location: nope.pem}\n"
    with pytest.raises(InvalidConfigError, match=r"kafka\.ssl_ca_location: .*no such CA file"):
        load_config(write(tmp_path, text), env={})


def test_ssl_ca_location_without_tls_conflicts(tmp_path: Path) -> None:
    (tmp_path / "ca.pem").write_text("x")
    text = MINIMAL + "kafka: {ssl_ca_location: ca.pem}\n"
    with pytest.raises(InvalidConfigError, match=r"kafka\.ssl_ca_location: `ssl_ca_location` is"):
        load_config(write(tmp_path, text), env={})


def _models() -> list[type[BaseModel]]:
    return [
        value
        for value in vars(config_models).values()
        if isinstance(value, type)
        and issubclass(value, BaseModel)
        and value.__module__ == config_models.__name__
        and not value.__name__.startswith("_")
    ]


@pytest.mark.parametrize("model", _models(), ids=lambda m: m.__name__)
def test_every_field_is_documented(model: type[BaseModel]) -> None:
    assert model.__doc__
    undocumented = [name for name, info in model.model_fields.items() if not info.description]
    assert not undocumented


def test_pipeline_config_is_the_root() -> None:
    assert set(PipelineConfig.model_fields) == {
        "pipeline",
        "source",
        "tables",
        "kafka",
        "extract",
        "transform",
        "sinks",
        "notify",
        "present",
    }


def test_override_replaces_a_missing_variable(tmp_path: Path) -> None:
    text = MINIMAL + "present: {port: '${PORT}'}\n"
    config = load_config(write(tmp_path, text), env={"DATAPLUMP__PRESENT__PORT": "8100"})
    assert config.present.port == 8100


def test_interpolated_channel_kind_is_hidden(tmp_path: Path) -> None:
    text = MINIMAL + "notify: {channels: [{kind: '${KIND}'}]}\n"
    with pytest.raises(InvalidConfigError) as caught:
        load_config(write(tmp_path, text), env={"KIND": "slak-secret"})
    assert str(caught.value).endswith(
        "notify.channels[0].kind: invalid choice '***' (valid: log, webhook, slack, email)"
    )


@pytest.mark.parametrize(
    ("value", "shown"),
    [("${A-secret}", "`${A...}`"), ("${}", "`${}`"), ("x ${A", "`${`"), ("${1A}", "`${1A}`")],
)
def test_malformed_references(tmp_path: Path, value: str, shown: str) -> None:
    text = MINIMAL + f"present: {{host: '{value}'}}\n"
    with pytest.raises(InvalidConfigError) as caught:
        load_config(write(tmp_path, text), env={"A": "a"})
    (issue,) = caught.value.issues
    assert issue.message.startswith(f"malformed reference {shown}: ")
    assert "secret" not in str(caught.value)


def test_docs_describe_every_key() -> None:
    docs = (ROOT / "docs" / "config.md").read_text()
    for model in _models():
        for name, info in model.model_fields.items():
            key = info.alias or name
            forms = (f"`{key}`", f"`{key}.", f".{key}`", f"`{key}:")
            assert any(form in docs for form in forms), f"{model.__name__}.{name}"


def test_package_docstring_example(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(ROOT)
    failures, tried = doctest.testmod(dataplump.config)
    assert (failures, tried) == (0, 3)
