# Sourced by the runs against the release binaries (tests/adversarial/run.sh,
# tests/prometheus/run.sh), from the repository's root: RELAY_BIN and MOCK_BIN name binaries
# already built (CI reuses its one release build); without them, both are built in release mode
# and these two variables name them.
if [[ -z "${RELAY_BIN:-}" || -z "${MOCK_BIN:-}" ]]; then
  cargo build --release --bin codex-relay --example mock_upstream
  TARGET_DIR="$(cd "${CARGO_TARGET_DIR:-target}" && pwd)"
  RELAY_BIN="$TARGET_DIR/release/codex-relay"
  MOCK_BIN="$TARGET_DIR/release/examples/mock_upstream"
fi
