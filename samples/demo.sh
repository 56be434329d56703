#!/usr/bin/env bash
# Runs the lakelink agent on the sample: creates samples/data/crm.db, keeps changing it in the
# background, and syncs it into samples/data/lake until you press Ctrl-C.
set -euo pipefail
repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$repo"
cargo build --release --locked -p lakelink-engine -p lakelink-samples --bins
bin="$repo/target/release"
"$bin/lakelink-sample" init --db samples/data/crm.db
"$bin/lakelink-sample" write --db samples/data/crm.db --rate 20 &
writer=$!
trap 'kill "$writer" 2>/dev/null || true; wait "$writer" 2>/dev/null || true' EXIT INT TERM
echo "lake: $repo/samples/data/lake (model.json appears after the first snapshot, on the next minute)"
echo "in another terminal: target/release/lakelink read --lake samples/data/lake account | head"
echo "                     target/release/lakelink status --config samples/lakelink.toml"
"$bin/lakelink" run --config samples/lakelink.toml
