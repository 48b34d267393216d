#!/usr/bin/env bash
# Checks deploy/systemd/codex-relay.service without a running systemd (CI's machines have none):
#   - `systemd-analyze verify` on a copy whose ExecStart= names RELAY_BIN, since verify insists on
#     an executable that exists and the unit's /usr/local/bin/codex-relay is not installed here;
#   - `systemd-analyze security --offline=yes`: the exposure score is printed, and must stay at or
#     under MAX_EXPOSURE (the offline review is deterministic for one systemd version);
#   - TimeoutStopSec= above the default drain grace plus the usage write, so systemd's SIGKILL
#     never lands in the middle of a drain;
#   - MemoryDenyWriteExecute=: the relay starts and serves a stream through the mock upstream
#     under the kernel's own W^X switch (prctl PR_SET_MDWE, Linux 6.3+, kept across exec), which
#     refuses the writable executable mappings systemd's seccomp filter would refuse.
#
#   bash tests/systemd/run.sh RELAY_BIN MOCK_BIN
#
# Prints `systemd: N passed, M failed`; exits non-zero on any failure.
set -euo pipefail
cd "$(dirname "$0")/../.."
CHECKS_NAME=systemd
source tests/support/checks.sh

take_binaries "$@"
UNIT="deploy/systemd/codex-relay.service"
# systemd-analyze's scale: 0 (nothing exposed) to 10. The unit scores 1.2 on systemd 252.
MAX_EXPOSURE="2.0"
# What the relay takes after the grace: the queued usage write (startup.rs USAGE_FLUSH).
USAGE_WRITE_SECS=5

TMP="$(mktemp -d)"
RELAY_PID=""
cleanup() {
  set +e
  [[ -n "$RELAY_PID" ]] && kill "$RELAY_PID" 2>/dev/null && wait "$RELAY_PID" 2>/dev/null
  stop_mock
  rm -rf "$TMP"
}
trap cleanup EXIT

if ! command -v systemd-analyze >/dev/null 2>&1; then
  DEBIAN_FRONTEND=noninteractive apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends systemd >/dev/null
fi
log "$(systemd-analyze --version | head -n1)"

# --- The unit ---------------------------------------------------------------------------------
sed "s|^ExecStart=/usr/local/bin/codex-relay |ExecStart=$RELAY_BIN |" "$UNIT" >"$TMP/codex-relay.service"
verified="$(systemd-analyze verify --man=no "$TMP/codex-relay.service" 2>&1)" || true
check "systemd-analyze verify finds nothing to say${verified:+: $verified}" test -z "$verified"

security="$(systemd-analyze security --offline=yes "$TMP/codex-relay.service" 2>&1 || true)"
score="$(sed -n 's/.*Overall exposure level for codex-relay.service: \([0-9.]*\).*/\1/p' <<<"$security")"
log "systemd-analyze security: exposure ${score:-unknown} (0 best, 10 worst)"
check "exposure ${score:-unknown} at most $MAX_EXPOSURE" \
  python3 -c 'import sys; sys.exit(not float(sys.argv[1]) <= float(sys.argv[2]))' "${score:-99}" "$MAX_EXPOSURE"

grace="$(sed -n 's/^shutdown_grace_secs = \([0-9]*\)$/\1/p' config/default.toml)"
stop_timeout="$(sed -n 's/^TimeoutStopSec=\([0-9]*\)$/\1/p' "$UNIT")"
check "TimeoutStopSec=$stop_timeout exceeds the ${grace} s grace and the ${USAGE_WRITE_SECS} s usage write" \
  test "${stop_timeout:-0}" -gt "$((${grace:-999} + USAGE_WRITE_SECS))"

# --- MemoryDenyWriteExecute= ------------------------------------------------------------------
start_mock "$MOCK_BIN" "$TMP" || { fail "the mock upstream did not start"; summary; exit 1; }
read -r RELAY_PORT ADMIN_PORT < <(free_ports 2)
export CODEX_RELAY__STORE__PATH="$TMP/relay.db"
export CODEX_RELAY__SERVER__LISTEN="127.0.0.1:$RELAY_PORT" CODEX_RELAY__ADMIN__LISTEN="127.0.0.1:$ADMIN_PORT"
export CODEX_RELAY__UPSTREAM__BASE_URL="$MOCK_URL" CODEX_RELAY__OAUTH__ISSUER="$MOCK_URL"
"$RELAY_BIN" account import "$TMP/auth.json" >/dev/null 2>&1
KEY="$("$RELAY_BIN" key create --name mdwe 2>/dev/null)"
# PR_SET_MDWE (65) with PR_MDWE_REFUSE_EXEC_GAIN (1), then exec the relay under it.
python3 -c '
import ctypes, os, sys
if ctypes.CDLL(None, use_errno=True).prctl(65, 1, 0, 0, 0) != 0:
    sys.exit("prctl(PR_SET_MDWE) failed: this kernel has no W^X switch")
os.execv(sys.argv[1], sys.argv[1:])
' "$RELAY_BIN" serve >"$TMP/relay.log" 2>&1 &
RELAY_PID=$!
served() {
  curl -sS --max-time 10 "http://127.0.0.1:$RELAY_PORT/v1/responses" -H "Authorization: Bearer $KEY" \
    -H 'Content-Type: application/json' -d '{"model":"gpt-5.5","input":"hi","stream":true}' 2>/dev/null |
    grep -q 'event: response.completed'
}
for _ in $(seq 1 50); do
  served && break
  sleep 0.2
done
check "the relay serves a stream with writable executable memory refused (MemoryDenyWriteExecute=)" served
if ((FAILED)); then tail -n 20 "$TMP/relay.log"; fi

summary
((FAILED == 0))
