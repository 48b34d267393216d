#!/usr/bin/env bash
# The adversarial run: starts the codex-relay release binary beside the mock upstream and replays
# hostile input against it (tests/adversarial/attacks.py). Prints `adversarial: N passed, M failed`
# and exits non-zero on any failure.
#
# RELAY_BIN and MOCK_BIN name binaries already built (CI reuses its one release build); without
# them the script builds both in release mode.
set -euo pipefail
cd "$(dirname "$0")/../.."

source tests/release_binaries.sh

exec python3 tests/adversarial/attacks.py --relay "$RELAY_BIN" --mock "$MOCK_BIN" "$@"
