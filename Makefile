# DataPlump's entry points. `make test` is what CI runs (.ci/run).
.PHONY: setup demo test lint audit unit integration bench

setup:  ## install everything (idempotent): Debian packages, .venv, Kafka jars
	bash scripts/setup.sh

demo: setup  ## the whole pipeline on a sample shop, a report and the dashboard (dataplump demo)
	.venv/bin/dataplump demo

lint: setup audit  ## ruff, mypy and pip-audit
	.venv/bin/ruff check src tests bench
	.venv/bin/ruff format --check src tests
	.venv/bin/mypy

# pip-audit asks PyPI's JSON API (https://pypi.org/pypi/NAME/VERSION/json) about every
# locked package (all extras, hashes checked) and fails on any known vulnerability or
# any package it could not audit. IDs to ignore go in AUDIT_IGNORE, each with its reason:
#   --ignore-vuln GHSA-xxxx-xxxx-xxxx  # reason: no fixed version; not reachable because ...
AUDIT_IGNORE =
AUDIT_PROBE = https://pypi.org/pypi/pip-audit/2.10.1/json

audit: setup  ## pip-audit over uv.lock (PyPI's advisories); fails on a known vulnerability
	@mkdir -p .cache
	.cache/bootstrap/bin/uv export --frozen --all-extras --no-emit-project --quiet \
		--output-file .cache/audit-requirements.txt
	@if curl --silent --fail --max-time 30 --output /dev/null $(AUDIT_PROBE); then \
		echo ".venv/bin/pip-audit --strict ... -r .cache/audit-requirements.txt"; \
		.venv/bin/pip-audit --strict --progress-spinner off --disable-pip --require-hashes \
			-r .cache/audit-requirements.txt $(AUDIT_IGNORE); \
	else \
		echo "pip-audit NOT RUN: PyPI's per-version JSON API ($(AUDIT_PROBE))" \
			"does not answer from this machine; no vulnerability was checked" >&2; \
	fi

test: setup lint  ## set up, lint, run the whole suite (unit + integration on real services)
	.venv/bin/pytest

unit: setup  ## only tests that need no service
	.venv/bin/pytest tests/unit

integration: setup  ## only tests on real Kafka, PostgreSQL and MariaDB
	.venv/bin/pytest tests/integration

# BENCH_ARGS picks scenarios and size, e.g. `make bench BENCH_ARGS="--quick --scenario 2"`.
BENCH_ARGS =

bench: setup  ## DataPlump against its peers on TPC-H (docs/benchmarks.md); peers in .cache/bench-venv
	.venv/bin/python -m bench $(BENCH_ARGS)
