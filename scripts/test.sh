#!/usr/bin/env bash
# The README's test command: installs the pinned Azurite for the ADLS lake's tests (they start
# and stop their own on loopback), starts throwaway PostgreSQL servers for the PostgreSQL
# source's tests (scripts/postgres-test-cluster.sh), runs every test of the workspace, and
# stops the servers. Arguments go to cargo test (e.g. --locked, or a test filter after --).
set -euo pipefail
cd "$(dirname "$0")/.."
npm ci --prefix tests/azurite --no-audit --no-fund --loglevel=error
exec scripts/postgres-test-cluster.sh cargo test --workspace "$@"
