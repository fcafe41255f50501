"""Secrets never show: not in repr, dumps, error messages, tracebacks or CLI output."""

from __future__ import annotations

import traceback
from pathlib import Path

import pytest
from typer.testing import CliRunner

from dataplump.cli.config_cmd import app
from dataplump.config import MASK, InvalidConfigError, load_config
from tests.unit.config.helpers import write

SECRETS = ("src-pw-4711", "sasl-pw-4712", "hook-tok-4713", "slack-tok-4714", "smtp-pw-4715")

GOOD = """\
pipeline: {name: shop}
source:
  url: postgresql+psycopg://shop:src-pw-4711@db.internal:5432/shop
tables:
  orders: {primary_key: id}
kafka:
  bootstrap_servers: k1:9093
  security_protocol: SASL_SSL
  sasl_mechanism: PLAIN
  sasl_username: dataplump
  sasl_password: ${KAFKA_PASSWORD}
  extra: {ssl.key.password: smtp-pw-4715}
sinks:
  dw:
    kind: postgres
    url: postgresql+psycopg://dw:src-pw-4711@warehouse/dw
notify:
  channels:
    - {kind: webhook, url: "https://alerts.example.com/hook?token=hook-tok-4713"}
    - {kind: slack, webhook_url: "https://hooks.slack.com/services/slack-tok-4714"}
    - kind: email
      smtp_host: smtp.example.com
      password: smtp-pw-4715
      from: a@example.com
      to: [b@example.com]
present: {auth_token: hook-tok-4713}
"""
ENV = {"KAFKA_PASSWORD": "sasl-pw-4712"}


def _assert_clean(text: str) -> None:
    leaked = [secret for secret in SECRETS if secret in text]
    assert not leaked, f"secrets {leaked} in:\n{text}"


def test_valid_config_hides_secrets(tmp_path: Path) -> None:
    config = load_config(write(tmp_path, GOOD), env=ENV)
    assert config.kafka.sasl_password is not None
    assert config.kafka.sasl_password.get_secret_value() == "sasl-pw-4712"
    assert "src-pw-4711" in config.source.url.get_secret_value()
    for text in (repr(config), str(config), str(config.model_dump()), repr(config.model_dump())):
        _assert_clean(text)
    dump = config.redacted_dump()
    _assert_clean(str(dump))
    assert dump["source"]["url"] == "postgresql+psycopg://shop:***@db.internal:5432/shop"
    assert dump["sinks"]["dw"]["url"] == "postgresql+psycopg://dw:***@warehouse/dw"
    assert dump["kafka"]["sasl_password"] == MASK
    assert dump["kafka"]["extra"] == {"ssl.key.password": MASK}
    assert dump["notify"]["channels"][1]["webhook_url"] == MASK
    assert dump["present"]["auth_token"] == MASK
    assert config.source.masked_url() == "postgresql+psycopg://shop:***@db.internal:5432/shop"


def test_cli_output_hides_secrets(tmp_path: Path) -> None:
    path = write(tmp_path, GOOD)
    for args in (["check", "-c", str(path)], ["check", "-c", str(path), "--show"]):
        result = CliRunner().invoke(app, args, env=ENV)
        assert result.exit_code == 0, result.output
        _assert_clean(result.output)
    assert "postgresql+psycopg://shop:***@db.internal:5432/shop" in result.stdout


BROKEN = [
    # the secret field itself is invalid
    (
        "source:\n  url: postgresql+psycopg://shop:src-pw-4711@db.internal:5432/shop",
        "source:\n  url: 'src-pw-4711 is no url'",
    ),
    ("sasl_password: ${KAFKA_PASSWORD}", "sasl_password: [sasl-pw-4712]"),
    ("sasl_password: ${KAFKA_PASSWORD}", "sasl_password: {sasl-pw-4712: 1}"),
    ('url: "https://alerts.example.com/hook?token=hook-tok-4713"', "url: [hook-tok-4713]"),
    ("url: postgresql+psycopg://dw:src-pw-4711@warehouse/dw", "url: ':src-pw-4711@'"),
    # a secret under a misspelled key, or in a duplicate key
    ("sasl_password: ${KAFKA_PASSWORD}", "sasl_pasword: sasl-pw-4712"),
    ("present: {auth_token: hook-tok-4713}", "present: {auth_token: x, auth_token: hook-tok-4713}"),
    # an interpolated secret put where a number belongs
    ("present: {auth_token: hook-tok-4713}", "present: {port: '${KAFKA_PASSWORD}'}"),
    # a YAML syntax error on a line holding a secret
    ("present: {auth_token: hook-tok-4713}", "present: {auth_token: [hook-tok-4713}"),
    # the secret comes from an override
    ("present: {auth_token: hook-tok-4713}", "present: {}"),
]


@pytest.mark.parametrize(("old", "new"), BROKEN)
def test_errors_hide_secrets(tmp_path: Path, old: str, new: str) -> None:
    assert old in GOOD
    path = write(tmp_path, GOOD.replace(old, new))
    env = (
        {**ENV, "DATAPLUMP__SOURCE__URL": "not-a-url src-pw-4711"} if new == "present: {}" else ENV
    )
    with pytest.raises(InvalidConfigError) as caught:
        load_config(path, env=env)
    _assert_clean(str(caught.value))
    _assert_clean("".join(traceback.format_exception(caught.value)))
    assert caught.value.__cause__ is None
    assert caught.value.__context__ is None
    result = CliRunner().invoke(app, ["check", "-c", str(path)], env=env)
    assert result.exit_code == 1
    _assert_clean(result.output)


@pytest.mark.parametrize("password", ["p@ss/w:rd", "a%b#c?d", "plain"])
def test_a_password_from_the_environment_keeps_the_url_whole(tmp_path: Path, password: str) -> None:
    """A `${VAR}` in a URL's user:password@ part is percent-encoded: an `@` or `/` in the
    password neither breaks the URL nor spills into the host name an error shows."""
    from sqlalchemy.engine import make_url

    text = GOOD.replace("shop:src-pw-4711@db.internal", "shop:${SRC_PW}@db.internal")
    config = load_config(write(tmp_path, text), env={"SRC_PW": password, "KAFKA_PASSWORD": "x"})
    url = make_url(config.source.url.get_secret_value())
    assert (url.username, url.password, url.host, url.port) == (
        "shop",
        password,
        "db.internal",
        5432,
    )
    assert password not in str(config.source.url)


def test_a_whole_url_from_the_environment_is_taken_as_written(tmp_path: Path) -> None:
    text = GOOD.replace(
        "url: postgresql+psycopg://shop:src-pw-4711@db.internal:5432/shop", "url: ${SRC_URL}"
    )
    given = "postgresql+psycopg://shop:p%40ss@db.internal:5432/shop"
    config = load_config(write(tmp_path, text), env={"SRC_URL": given, "KAFKA_PASSWORD": "x"})
    assert config.source.url.get_secret_value() == given
