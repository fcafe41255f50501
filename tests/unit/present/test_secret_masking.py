"""Database URLs as every message shows them: the password and the credentials a driver
also takes in the query (`?password=`, `sslpassword`, MySQL's `passwd`) are masked, in
the config's display, in source and sink errors and in reports."""

from __future__ import annotations

from urllib.parse import quote

import pytest
from sqlalchemy.engine import make_url

from dataplump.config.models import SecretUrl, masked_url, url_secrets
from dataplump.present.report import scrub, secret_values
from dataplump.sources.errors import redact
from tests.unit.present.frames import config

SECRET = "Pl4nted/Secret+:x"
QUOTED = quote(SECRET, safe="")  # as a URL carries it


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        (
            f"postgresql+psycopg://bob:{QUOTED}@db:5432/shop",
            "postgresql+psycopg://bob:***@db:5432/shop",
        ),
        (
            f"postgresql+psycopg://bob@db/shop?password={QUOTED}&application_name=dp",
            "postgresql+psycopg://bob@db/shop?application_name=dp&password=***",
        ),
        (
            f"postgresql+psycopg://bob@db/shop?sslpassword={QUOTED}&sslmode=require",
            "postgresql+psycopg://bob@db/shop?sslmode=require&sslpassword=***",
        ),
        (
            f"mysql+pymysql://bob@db/shop?passwd={QUOTED}&charset=utf8mb4",
            "mysql+pymysql://bob@db/shop?charset=utf8mb4&passwd=***",
        ),
        ("sqlite:///shop.db", "sqlite:///shop.db"),
    ],
)
def test_masked_url_hides_every_credential(url: str, shown: str) -> None:
    assert masked_url(url) == shown
    assert masked_url(make_url(url)) == shown
    assert SecretUrl(url).masked() == shown
    assert str(SecretUrl(url)) == shown
    assert "Pl4nted" not in shown


def test_an_unparsable_url_is_masked_whole() -> None:
    assert "Pl4nted" not in masked_url(f"not a url {SECRET}")


def test_url_secrets_finds_the_password_and_the_query_credentials() -> None:
    url = f"postgresql+psycopg://bob:pw0rd@db/shop?sslpassword={QUOTED}&sslmode=require"
    assert sorted(url_secrets(url)) == sorted(["pw0rd", SECRET])
    assert url_secrets("sqlite:///shop.db") == []


def test_source_errors_redact_query_credentials_in_every_quoting() -> None:
    url = make_url(f"postgresql+psycopg://bob@db/shop?password={QUOTED}")
    text = f"failed with {SECRET} / {QUOTED} and more"
    shown = redact(text, url)
    assert "Pl4nted" not in shown
    assert shown.startswith("failed with *")


def test_a_report_scrubs_a_query_password() -> None:
    pipeline = config()
    url = f"postgresql+psycopg://bob@db/shop?password={QUOTED}"
    source = pipeline.source.model_copy(update={"url": SecretUrl(url)})
    pipeline = pipeline.model_copy(update={"source": source})
    secrets = secret_values(pipeline)
    assert SECRET in secrets
    assert "Pl4nted" not in scrub(f"the source said {SECRET} at {url}", secrets)
