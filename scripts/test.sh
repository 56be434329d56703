#!/usr/bin/env bash
# The README's test command: installs the pinned Azurite for the ADLS lake's tests (they start
# and stop their own on loopback), the pinned Delta readers for the Delta tests (a Python
# virtual environment in target/python-readers, from tests/delta/requirements.txt), starts throwaway PostgreSQL servers for the PostgreSQL
# source's tests (scripts/postgres-test-cluster.sh), runs every test of the workspace, and
# stops the servers. Arguments go to cargo test (e.g. --locked, or a test filter after --).
set -euo pipefail
cd "$(dirname "$0")/.."
npm ci --prefix tests/azurite --no-audit --no-fund --loglevel=error
python3 -m venv target/python-readers
target/python-readers/bin/pip install --quiet --disable-pip-version-check \
    -r tests/delta/requirements.txt
export LAKELINK_TEST_PYTHON="$PWD/target/python-readers/bin/python"
exec scripts/postgres-test-cluster.sh cargo test --workspace "$@"
