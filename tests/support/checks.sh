# Sourced by the deployment checks (tests/container/run.sh, tests/systemd/run.sh): their PASS and
# FAIL lines and closing `NAME: N passed, M failed`, and the mock upstream they serve through.
# Set CHECKS_NAME before sourcing.

PASSED=0
FAILED=0
MOCK_PID=""
MOCK_URL=""

log() { printf '%s: %s\n' "$CHECKS_NAME" "$*" >&2; }
pass() { PASSED=$((PASSED + 1)); printf '%s: PASS %s\n' "$CHECKS_NAME" "$*"; }
fail() { FAILED=$((FAILED + 1)); printf '%s: FAIL %s\n' "$CHECKS_NAME" "$*"; }
summary() { printf '%s: %d passed, %d failed\n' "$CHECKS_NAME" "$PASSED" "$FAILED"; }

# take_binaries "$@": RELAY_BIN and MOCK_BIN, made absolute, from the script's two arguments.
take_binaries() {
  RELAY_BIN="$(realpath "${1:?usage: $0 RELAY_BIN MOCK_BIN}")"
  MOCK_BIN="$(realpath "${2:?usage: $0 RELAY_BIN MOCK_BIN}")"
}

# check DESCRIPTION COMMAND...: PASS or FAIL by the command's status.
check() {
  local what="$1"
  shift
  if "$@"; then pass "$what"; else fail "$what"; fi
}

# start_mock MOCK_BIN DIR [ARGS...]: the mock upstream on a loopback port of its choosing, with a
# login it accepts in DIR/auth.json; sets MOCK_PID and MOCK_URL. Returns 1 if it did not start.
start_mock() {
  local bin="$1" dir="$2"
  shift 2
  "$bin" --listen 127.0.0.1:0 --write-auth-json "$dir/auth.json" "$@" >"$dir/mock.log" 2>&1 &
  MOCK_PID=$!
  for _ in $(seq 1 100); do
    MOCK_URL="$(sed -n 's/^mock upstream listening on \(http:.*\)$/\1/p' "$dir/mock.log")"
    [[ -n "$MOCK_URL" && -s "$dir/auth.json" ]] && return 0
    kill -0 "$MOCK_PID" 2>/dev/null || return 1
    sleep 0.2
  done
  return 1
}

stop_mock() {
  [[ -n "$MOCK_PID" ]] || return 0
  kill "$MOCK_PID" 2>/dev/null || true
  wait "$MOCK_PID" 2>/dev/null || true
  MOCK_PID=""
}

# free_ports N: N loopback ports free now, on one line.
free_ports() {
  python3 -c '
import socket, sys
socks = [socket.socket() for _ in range(int(sys.argv[1]))]
for s in socks:
    s.bind(("127.0.0.1", 0))
print(*(s.getsockname()[1] for s in socks))
' "$1"
}
