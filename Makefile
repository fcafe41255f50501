# DataPlump's entry points. `make test` is what CI runs (.ci/run).
.PHONY: setup demo test lint unit integration

setup:  ## install everything (idempotent): Debian packages, .venv, Kafka jars
	bash scripts/setup.sh

demo: setup  ## the whole pipeline on a sample shop, a report and the dashboard (dataplump demo)
	.venv/bin/dataplump demo

lint: setup  ## ruff and mypy
	.venv/bin/ruff check src tests bench
	.venv/bin/ruff format --check src tests
	.venv/bin/mypy

test: setup lint  ## set up, lint, run the whole suite (unit + integration on real services)
	.venv/bin/pytest

unit: setup  ## only tests that need no service
	.venv/bin/pytest tests/unit

integration: setup  ## only tests on real Kafka, PostgreSQL and MariaDB
	.venv/bin/pytest tests/integration
