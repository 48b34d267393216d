#!/usr/bin/env bash
# The Prometheus run: a real Prometheus (Debian's package, installed by setup.sh) scrapes the
# codex-relay release binary beside the mock upstream while requests go through it, then the
# series are checked through Prometheus's query API (tests/prometheus/scrape.py). Prints
# `prometheus: N passed, M failed` and exits non-zero on any failure.
#
# RELAY_BIN and MOCK_BIN name binaries already built (CI reuses its one release build); without
# them the script builds both in release mode.
set -euo pipefail
cd "$(dirname "$0")/../.."

bash tests/prometheus/setup.sh

source tests/release_binaries.sh

exec python3 tests/prometheus/scrape.py --relay "$RELAY_BIN" --mock "$MOCK_BIN" "$@"
