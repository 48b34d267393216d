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

RELAY_BIN="$(realpath "${1:?usage: run.sh RELAY_BIN MOCK_BIN}")"
MOCK_BIN="$(realpath "${2:?usage: run.sh RELAY_BIN MOCK_BIN}")"
UNIT="deploy/systemd/codex-relay.service"
# systemd-analyze's scale: 0 (nothing exposed) to 10. The unit scores 1.2 on systemd 252.
MAX_EXPOSURE="2.0"
# What the relay takes after the grace: the queued usage write (startup.rs USAGE_FLUSH).
USAGE_WRITE_SECS=5

PASSED=0
FAILED=0
TMP="$(mktemp -d)"
PIDS=()
pass() { PASSED=$((PASSED + 1)); printf 'systemd: PASS %s\n' "$*"; }
fail() { FAILED=$((FAILED + 1)); printf 'systemd: FAIL %s\n' "$*"; }
check() { # check DESCRIPTION COMMAND...
  local what="$1"
  shift
  if "$@"; then pass "$what"; else fail "$what"; fi
}
cleanup() {
  local pid
  for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
  for pid in "${PIDS[@]}"; do wait "$pid" 2>/dev/null || true; done
  rm -rf "$TMP"
}
trap cleanup EXIT

if ! command -v systemd-analyze >/dev/null 2>&1; then
  DEBIAN_FRONTEND=noninteractive apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends systemd >/dev/null
fi
printf 'systemd: %s\n' "$(systemd-analyze --version | head -n1)"

# --- The unit ---------------------------------------------------------------------------------
sed "s|^ExecStart=/usr/local/bin/codex-relay |ExecStart=$RELAY_BIN |" "$UNIT" >"$TMP/codex-relay.service"
verified="$(systemd-analyze verify --man=no "$TMP/codex-relay.service" 2>&1)" || true
check "systemd-analyze verify finds nothing to say${verified:+: $verified}" test -z "$verified"

security="$(systemd-analyze security --offline=yes "$TMP/codex-relay.service" 2>&1 || true)"
score="$(sed -n 's/.*Overall exposure level for codex-relay.service: \([0-9.]*\).*/\1/p' <<<"$security")"
printf 'systemd: systemd-analyze security: exposure %s (0 best, 10 worst)\n' "${score:-unknown}"
check "exposure ${score:-unknown} at most $MAX_EXPOSURE" \
  python3 -c 'import sys; sys.exit(not float(sys.argv[1]) <= float(sys.argv[2]))' "${score:-99}" "$MAX_EXPOSURE"

grace="$(sed -n 's/^shutdown_grace_secs = \([0-9]*\)$/\1/p' config/default.toml)"
stop_timeout="$(sed -n 's/^TimeoutStopSec=\([0-9]*\)$/\1/p' "$UNIT")"
check "TimeoutStopSec=$stop_timeout exceeds the ${grace} s grace and the ${USAGE_WRITE_SECS} s usage write" \
  test "${stop_timeout:-0}" -gt "$((${grace:-999} + USAGE_WRITE_SECS))"

# --- MemoryDenyWriteExecute= ------------------------------------------------------------------
read -r MOCK_PORT RELAY_PORT ADMIN_PORT < <(python3 -c '
import socket
socks = [socket.socket() for _ in range(3)]
for s in socks:
    s.bind(("127.0.0.1", 0))
print(*(s.getsockname()[1] for s in socks))
')
"$MOCK_BIN" --listen "127.0.0.1:$MOCK_PORT" --write-auth-json "$TMP/auth.json" >"$TMP/mock.log" 2>&1 &
PIDS+=($!)
for _ in $(seq 1 100); do
  [[ -s "$TMP/auth.json" ]] && break
  sleep 0.1
done
export CODEX_RELAY__STORE__PATH="$TMP/relay.db"
export CODEX_RELAY__SERVER__LISTEN="127.0.0.1:$RELAY_PORT" CODEX_RELAY__ADMIN__LISTEN="127.0.0.1:$ADMIN_PORT"
export CODEX_RELAY__UPSTREAM__BASE_URL="http://127.0.0.1:$MOCK_PORT" CODEX_RELAY__OAUTH__ISSUER="http://127.0.0.1:$MOCK_PORT"
"$RELAY_BIN" account import "$TMP/auth.json" >/dev/null 2>&1
KEY="$("$RELAY_BIN" key create --name mdwe 2>/dev/null)"
# PR_SET_MDWE (65) with PR_MDWE_REFUSE_EXEC_GAIN (1), then exec the relay under it.
python3 -c '
import ctypes, os, sys
if ctypes.CDLL(None, use_errno=True).prctl(65, 1, 0, 0, 0) != 0:
    sys.exit("prctl(PR_SET_MDWE) failed: this kernel has no W^X switch")
os.execv(sys.argv[1], sys.argv[1:])
' "$RELAY_BIN" serve >"$TMP/relay.log" 2>&1 &
PIDS+=($!)
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

printf 'systemd: %d passed, %d failed\n' "$PASSED" "$FAILED"
((FAILED == 0))
