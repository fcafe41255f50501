#!/usr/bin/env bash
# Sets up everything DataPlump needs on a fresh Debian machine, and nothing twice:
#   1. Debian packages: Java 17, Maven, PostgreSQL, MariaDB, kcat, openssl (test certificates),
#      chromium (the dashboard's browser tests), Pango and a font (PDF reports, WeasyPrint),
#      poppler-utils (the tests read the PDF with pdftotext; README pictures use pdftoppm)
#   2. the Python environment: .venv in the repo, from uv.lock (exact versions)
#   3. Apache Kafka's jars, from Maven Central into the jar cache
# Run it as often as you like; a second run only checks.
set -euo pipefail
cd "$(dirname "$0")/.."

UV_VERSION=0.13.8
APT_PACKAGES=(openjdk-17-jre-headless maven postgresql mariadb-server kcat openssl chromium
  libpango-1.0-0 libpangoft2-1.0-0 fonts-dejavu-core poppler-utils)

step() { printf '==> %s\n' "$*"; }
started=$SECONDS

# --- 1. Debian packages --------------------------------------------------------
missing=()
for pkg in "${APT_PACKAGES[@]}"; do
  status=$(dpkg-query -W -f='${db:Status-Status}' "$pkg" 2>/dev/null || true)
  [ "$status" = installed ] || missing+=("$pkg")
done
if [ ${#missing[@]} -gt 0 ]; then
  step "installing Debian packages: ${missing[*]}"
  sudo=()
  if [ "$(id -u)" -ne 0 ]; then
    command -v sudo >/dev/null || { echo "error: not root and no sudo: install ${missing[*]} with apt-get" >&2; exit 1; }
    sudo=(sudo)
  fi
  "${sudo[@]}" apt-get update -q
  DEBIAN_FRONTEND=noninteractive "${sudo[@]}" apt-get install -y -q --no-install-recommends "${missing[@]}"
else
  step "Debian packages present: ${APT_PACKAGES[*]}"
fi

# --- 2. Python environment -----------------------------------------------------
uv=.cache/bootstrap/bin/uv
if [ ! -x "$uv" ] || [ "$("$uv" --version | cut -d' ' -f2)" != "$UV_VERSION" ]; then
  step "bootstrapping uv $UV_VERSION into .cache/bootstrap"
  python3 -m venv .cache/bootstrap
  .cache/bootstrap/bin/pip install -q --disable-pip-version-check "uv==$UV_VERSION"
fi
step "syncing .venv with uv.lock"
# Bytecode is compiled once here: with PYTHONDONTWRITEBYTECODE set (as on our machines)
# every process would otherwise compile pandas, SQLAlchemy, ... again (~3 s of CPU each,
# and `run` and the tests start many processes). Both steps skip what is up to date.
"$uv" sync --frozen --extra dev --quiet --compile-bytecode
.venv/bin/python -m compileall -q src >/dev/null

# --- 3. Apache Kafka -------------------------------------------------------------
step "Apache Kafka jars"
.venv/bin/dataplump kafka install

step "setup done in $((SECONDS - started))s"
