#!/usr/bin/env bash
# The README's test command: starts a throwaway PostgreSQL server for the PostgreSQL source's
# tests (scripts/postgres-test-cluster.sh), runs every test of the workspace, and stops the
# server. Arguments go to cargo test (e.g. --locked, or a test filter after --).
set -euo pipefail
cd "$(dirname "$0")/.."
exec scripts/postgres-test-cluster.sh cargo test --workspace "$@"
