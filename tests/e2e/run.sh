#!/usr/bin/env bash
# End-to-end run of codex-relay with real clients:
#   mock upstream  <-  codex-relay serve  <-  OpenAI Python SDK (pytest) and the Codex CLI
# Installs the clients (tests/e2e/setup.sh), builds the relay and the mock upstream, starts both
# on free loopback ports, runs the clients, checks that no secret reached the relay log, and
# prints one summary line `e2e: N passed, M failed`. Exits non-zero if any check failed.
set -euo pipefail

cd "$(dirname "$0")/../.."

ANSWER="Hello from the mock upstream."
PROMPT="say hi"
PASSED=0
FAILED=0
PIDS=()
TMP=""

log() { printf 'e2e: %s\n' "$*" >&2; }
pass() { PASSED=$((PASSED + 1)); printf 'e2e: PASS %s\n' "$*"; }
fail() { FAILED=$((FAILED + 1)); printf 'e2e: FAIL %s\n' "$*"; }
summary() { printf 'e2e: %d passed, %d failed\n' "$PASSED" "$FAILED"; }

# A failure that leaves nothing else to check: count it, print the summary, stop.
abort() {
  fail "$*"
  summary
  exit 1
}

show_file() { # show_file TITLE FILE
  printf -- '----- %s -----\n' "$1"
  if [[ -s "$2" ]]; then tail -n 200 "$2"; else echo "(empty)"; fi
  printf -- '----- end of %s -----\n' "$1"
}

cleanup() {
  local pid
  for pid in "${PIDS[@]}"; do
    kill "$pid" 2>/dev/null || true
  done
  for pid in "${PIDS[@]}"; do
    wait "$pid" 2>/dev/null || true
  done
  if [[ -n "$TMP" && -n "${E2E_KEEP_TMP:-}" ]]; then
    printf 'e2e: kept the temporary folder %s (E2E_KEEP_TMP is set)\n' "$TMP" >&2
  elif [[ -n "$TMP" ]]; then
    rm -rf "$TMP"
  fi
}
trap cleanup EXIT

# Settings must come only from this script.
while IFS= read -r var; do unset "$var"; done < <(compgen -e | grep '^CODEX_RELAY' || true)
unset CODEX_API_KEY OPENAI_API_KEY OPENAI_BASE_URL OPENAI_ORG_ID OPENAI_PROJECT_ID

# --- Clients and binaries ---------------------------------------------------------------------
bash tests/e2e/setup.sh || abort "installing the clients (tests/e2e/setup.sh) failed"
bash tests/e2e/matrix/setup.sh || abort "installing the client matrix (tests/e2e/matrix/setup.sh) failed"
PY=".e2e/venv/bin/python"
CODEX="$(pwd)/.e2e/node/node_modules/.bin/codex"

log "building codex-relay and the mock upstream"
cargo build --bin codex-relay --example mock_upstream || abort "cargo build failed"
TARGET_DIR="${CARGO_TARGET_DIR:-target}"
RELAY="$(cd "$TARGET_DIR" && pwd)/debug/codex-relay"
MOCK="$(cd "$TARGET_DIR" && pwd)/debug/examples/mock_upstream"
[[ -x "$RELAY" ]] || abort "relay binary not found at $RELAY"
[[ -x "$MOCK" ]] || abort "mock upstream binary not found at $MOCK"

TMP="$(mktemp -d)"

read -r MOCK_PORT RELAY_PORT ADMIN_PORT < <("$PY" -c '
import socket
socks = [socket.socket() for _ in range(3)]
for s in socks:
    s.bind(("127.0.0.1", 0))
print(*(s.getsockname()[1] for s in socks))
')

# --- Mock upstream --------------------------------------------------------------------------
# Events 40 ms apart and keep-alive comments after 15 ms of silence: every stream the clients
# read carries SSE comments between its events, which they must ignore.
"$MOCK" --listen "127.0.0.1:$MOCK_PORT" --write-auth-json "$TMP/auth.json" --event-delay-ms 40 \
  --write-overloaded-auth-json "$TMP/auth-overloaded.json" >"$TMP/mock.log" 2>&1 &
MOCK_PID=$!
PIDS+=("$MOCK_PID")
for _ in $(seq 1 100); do
  if grep -q 'mock upstream listening on http://' "$TMP/mock.log" 2>/dev/null; then break; fi
  if ! kill -0 "$MOCK_PID" 2>/dev/null; then
    show_file "mock upstream log" "$TMP/mock.log"
    abort "mock upstream exited before it was ready"
  fi
  sleep 0.2
done
if ! grep -q 'mock upstream listening on http://' "$TMP/mock.log"; then
  show_file "mock upstream log" "$TMP/mock.log"
  abort "mock upstream did not report that it listens within 20 s"
fi
[[ -s "$TMP/auth.json" ]] || abort "mock upstream did not write $TMP/auth.json"
log "mock upstream on 127.0.0.1:$MOCK_PORT"

# --- Relay ----------------------------------------------------------------------------------
export CODEX_RELAY__STORE__PATH="$TMP/relay.db"
export CODEX_RELAY__SERVER__LISTEN="127.0.0.1:$RELAY_PORT"
export CODEX_RELAY__ADMIN__LISTEN="127.0.0.1:$ADMIN_PORT"
export CODEX_RELAY__UPSTREAM__BASE_URL="http://127.0.0.1:$MOCK_PORT"
export CODEX_RELAY__OAUTH__ISSUER="http://127.0.0.1:$MOCK_PORT"
export CODEX_RELAY__SERVER__SSE_KEEPALIVE_MS=15
# The shortest idle timeout a WebSocket may have, so test_websocket.py can watch it close one.
export CODEX_RELAY__WEBSOCKET__IDLE_TIMEOUT_SECS=10
# The log check below is strongest when the relay logs everything it may log.
export CODEX_RELAY__LOG__LEVEL="${E2E_RELAY_LOG_LEVEL:-trace}"

if ! ACCOUNT_ID="$("$RELAY" account import "$TMP/auth.json" 2>"$TMP/cli.log")"; then
  show_file "codex-relay account import (stderr)" "$TMP/cli.log"
  abort "codex-relay account import failed"
fi
[[ -n "$ACCOUNT_ID" ]] || abort "codex-relay account import printed no account id"
log "imported account $ACCOUNT_ID"

# A second account that is always overloaded, preferred by the pool: requests reach it first
# and must fail over to the healthy account before the client sees a byte.
if ! OVERLOADED_ID="$("$RELAY" account import "$TMP/auth-overloaded.json" 2>>"$TMP/cli.log")" ||
  ! "$RELAY" account set "$OVERLOADED_ID" --priority 10 2>>"$TMP/cli.log"; then
  show_file "codex-relay CLI (stderr)" "$TMP/cli.log"
  abort "importing or preferring the overloaded account failed"
fi
log "imported the always-overloaded account $OVERLOADED_ID and preferred it"

if ! KEY="$("$RELAY" key create --name e2e 2>>"$TMP/cli.log")"; then
  show_file "codex-relay CLI (stderr)" "$TMP/cli.log"
  abort "codex-relay key create failed"
fi
if [[ -z "$KEY" || "$KEY" == *$'\n'* || "$KEY" == *" "* ]]; then
  abort "codex-relay key create must print the API key alone on stdout (got $(printf '%s' "$KEY" | wc -l) newline(s), ${#KEY} chars)"
fi
log "created an API key (${#KEY} chars)"

"$RELAY" serve >"$TMP/relay.log" 2>&1 &
RELAY_PID=$!
PIDS+=("$RELAY_PID")
ready=""
for _ in $(seq 1 60); do
  # python3 rather than curl: it is already required, and a fresh machine may lack curl.
  if python3 -c 'import sys, urllib.request; urllib.request.urlopen(sys.argv[1], timeout=2)' \
    "http://127.0.0.1:$RELAY_PORT/healthz" 2>/dev/null; then
    ready=1
    break
  fi
  if ! kill -0 "$RELAY_PID" 2>/dev/null; then break; fi
  sleep 0.5
done
if [[ -z "$ready" ]]; then
  show_file "relay log" "$TMP/relay.log"
  if kill -0 "$RELAY_PID" 2>/dev/null; then
    abort "relay did not answer /healthz on 127.0.0.1:$RELAY_PORT within 30 s"
  fi
  abort "relay exited before it answered /healthz"
fi
log "relay on 127.0.0.1:$RELAY_PORT"

# --- OpenAI Python SDK ----------------------------------------------------------------------
log "running pytest (OpenAI Python SDK)"
if RELAY_BASE_URL="http://127.0.0.1:$RELAY_PORT/v1" RELAY_API_KEY="$KEY" \
  timeout 600 "$PY" -m pytest -q -p no:cacheprovider tests/e2e; then
  pass "OpenAI Python SDK (pytest)"
else
  fail "OpenAI Python SDK (pytest)"
fi

if RELAY_BASE_URL="http://127.0.0.1:$RELAY_PORT/v1" RELAY_API_KEY="$KEY" bash tests/e2e/stateful/run.sh; then pass "stateful clients (tests/e2e/stateful)"; else fail "stateful clients (tests/e2e/stateful)"; fi

# --- Codex CLI ------------------------------------------------------------------------------
CODEX_HOME_DIR="$TMP/codex-home"
CODEX_WORK="$TMP/codex-work"
mkdir -p "$CODEX_HOME_DIR" "$CODEX_WORK"
cat >"$CODEX_HOME_DIR/config.toml" <<EOF
model = "gpt-5.5"
model_provider = "relay"

[model_providers.relay]
name = "relay"
base_url = "http://127.0.0.1:$RELAY_PORT/v1"
env_key = "RELAY_API_KEY"
wire_api = "responses"
request_max_retries = 0
stream_max_retries = 0
EOF

run_codex() { # run_codex OUT ERR [extra codex exec flags...]; prints nothing, returns codex's status
  local out="$1" err="$2"
  shift 2
  (
    cd "$CODEX_WORK"
    CODEX_HOME="$CODEX_HOME_DIR" RELAY_API_KEY="$KEY" \
      timeout 120 "$CODEX" exec --skip-git-repo-check --ephemeral "$@" "$PROMPT" </dev/null >"$out" 2>"$err"
  )
}

log "running codex exec"
status=0
run_codex "$TMP/codex.out" "$TMP/codex.err" || status=$?
if [[ "$status" -eq 0 ]] && grep -qF "$ANSWER" "$TMP/codex.out"; then
  pass "codex exec prints the answer"
else
  show_file "codex exec stdout" "$TMP/codex.out"
  show_file "codex exec stderr" "$TMP/codex.err"
  fail "codex exec (exit status $status; expected 0 and '$ANSWER' on stdout)"
fi

log "running codex exec --json"
status=0
run_codex "$TMP/codex-json.out" "$TMP/codex-json.err" --json || status=$?
if [[ "$status" -eq 0 ]] && "$PY" - "$TMP/codex-json.out" "$ANSWER" <<'PYEOF'; then
import json, sys

path, answer = sys.argv[1], sys.argv[2]
found = False
completed = False
for line in open(path, encoding="utf-8"):
    line = line.strip()
    if not line:
        continue
    event = json.loads(line)  # every stdout line must be a JSON event
    item = event.get("item") or {}
    if event.get("type") == "item.completed" and item.get("type") == "agent_message":
        found = found or item.get("text", "").strip() == answer
    completed = completed or event.get("type") == "turn.completed"
if not found:
    sys.exit("no item.completed event with an agent_message item whose text is the answer")
if not completed:
    sys.exit("no turn.completed event")
PYEOF
  pass "codex exec --json reports the agent_message"
else
  show_file "codex exec --json stdout" "$TMP/codex-json.out"
  show_file "codex exec --json stderr" "$TMP/codex-json.err"
  fail "codex exec --json (exit status $status; expected 0 and an agent_message item with '$ANSWER')"
fi

# --- The relay's catalog in Codex's shape --------------------------------------------------
# `GET /v1/models?client_version=` answers in Codex's own catalog shape; the CLI must accept it as
# its model catalog (a catalog it cannot parse makes it fail to start).
log "running codex exec with the relay's model catalog"
status=0
if RELAY_API_KEY="$KEY" "$PY" - "http://127.0.0.1:$RELAY_PORT/v1/models?client_version=0.171.0" \
  "$TMP/catalog.json" <<'PYEOF'; then
import os, sys, urllib.request

url, path = sys.argv[1], sys.argv[2]
request = urllib.request.Request(url, headers={"Authorization": "Bearer " + os.environ["RELAY_API_KEY"]})
with urllib.request.urlopen(request, timeout=10) as response:
    open(path, "wb").write(response.read())
PYEOF
  run_codex "$TMP/codex-catalog.out" "$TMP/codex-catalog.err" \
    -c "model_catalog_json=\"$TMP/catalog.json\"" || status=$?
else
  status=1
fi
if [[ "$status" -eq 0 ]] && grep -qF "$ANSWER" "$TMP/codex-catalog.out"; then
  pass "codex exec accepts the relay's catalog"
else
  show_file "catalog" "$TMP/catalog.json"
  show_file "codex exec stderr" "$TMP/codex-catalog.err"
  fail "codex exec with the relay's catalog (exit status $status)"
fi

source tests/e2e/clients.sh # the client matrix: older Codex CLIs, remote compaction, Node SDK

# --- The Codex CLI over WebSocket ------------------------------------------------------------
# A provider with `supports_websockets = true`: the tool-call loop is two turns of one session,
# which must both go over one WebSocket connection (the relay logs one `websocket closed` line
# per connection, with its turns) and never fall back to HTTP (no POST /v1/responses meanwhile).
WS_HOME="$TMP/codex-home-ws"
mkdir -p "$WS_HOME"
sed 's/^wire_api = "responses"$/wire_api = "responses"\nsupports_websockets = true/' \
  "$CODEX_HOME_DIR/config.toml" >"$WS_HOME/config.toml"
# A key of its own, so that its lines in the relay log are this session's and no other client's.
WS_KEY="$("$RELAY" key create --name e2e-ws 2>>"$TMP/cli.log")"
WS_KEY_ID="$("$RELAY" key list --json 2>>"$TMP/cli.log" |
  "$PY" -c 'import json, sys; print(next(k["id"] for k in json.load(sys.stdin) if k["name"] == "e2e-ws"))')"
for _ in $(seq 1 50); do # the relay reads new keys from its store on its sync rhythm
  python3 -c 'import sys, urllib.request as u; u.urlopen(u.Request(sys.argv[1], headers={"Authorization": "Bearer " + sys.argv[2]}), timeout=2)' \
    "http://127.0.0.1:$RELAY_PORT/v1/models" "$WS_KEY" 2>/dev/null && break
  sleep 0.2
done
KEY="$WS_KEY" matrix_turn "codex $("$CODEX" --version 2>/dev/null | awk '{print $NF}'): tool-call loop over WebSocket" \
  "$CODEX" "$WS_HOME" "Tool result received." "please use a tool"
ws_session_check() {
  "$PY" - "$TMP/relay.log" "$WS_KEY_ID" <<'PYEOF'
import json, sys

path, key_id = sys.argv[1], sys.argv[2]
lines = [json.loads(l) for l in open(path, encoding="utf-8") if l.startswith("{")]
mine = [l for l in lines if l.get("msg") == "request" and l.get("key_id") == key_id
        and l.get("path") == "/v1/responses"]
posted = [l for l in mine if l.get("method") == "POST"]
# A handshake's line carries the connection's id as its request id; a turn's, as connection_id.
connections = {l.get("connection_id") or l.get("request_id") for l in mine if l.get("method") == "GET"}
closed = [l for l in lines if l.get("msg") == "websocket closed" and l.get("connection_id") in connections]
if posted:
    sys.exit(f"{len(posted)} turn(s) went over HTTP instead")
if not any(l.get("turns", 0) >= 2 for l in closed):
    sys.exit(f"no WebSocket connection of the session carried two turns: {closed}")
print("e2e:", sum(1 for l in mine if l.get("connection_id")), "turn(s) over WebSocket; turns per connection:",
      [l.get("turns") for l in closed])
PYEOF
}
ws_ok=""
for _ in $(seq 1 25); do # the connection's line is written once Codex has closed it
  if ws_session_check >"$TMP/ws-check.out" 2>&1; then ws_ok=1; break; fi
  sleep 0.4
done
cat "$TMP/ws-check.out"
if [[ -n "$ws_ok" ]]; then
  pass "codex: the tool-call loop stayed on one WebSocket (relay log)"
else
  show_file "relay log" "$TMP/relay.log"
  fail "codex: the tool-call loop did not stay on one WebSocket"
fi

# --- WebSocket turns over HTTP ---------------------------------------------------------------
# The mock restarts on its port with WebSockets off (426, as a backend without them answers):
# the relay serves the next WebSocket turns over HTTP streaming, reframed, and remembers it.
kill "$MOCK_PID" 2>/dev/null || true
wait "$MOCK_PID" 2>/dev/null || true
"$MOCK" --listen "127.0.0.1:$MOCK_PORT" --event-delay-ms 40 --no-websocket \
  --write-overloaded-auth-json "$TMP/auth-overloaded-2.json" >"$TMP/mock-2.log" 2>&1 &
MOCK_PID=$!
PIDS+=("$MOCK_PID")
for _ in $(seq 1 100); do
  grep -q 'mock upstream listening on http://' "$TMP/mock-2.log" 2>/dev/null && break
  sleep 0.2
done
if RELAY_BASE_URL="http://127.0.0.1:$RELAY_PORT/v1" RELAY_API_KEY="$KEY" \
  timeout 300 "$PY" -m pytest -q -p no:cacheprovider tests/e2e/websocket_fallback.py &&
  grep -q '"msg":"the upstream refused a WebSocket; turns go over HTTP for a while"' "$TMP/relay.log"; then
  pass "WebSocket turns over HTTP when the upstream refuses WebSockets"
else
  show_file "mock upstream log (restarted)" "$TMP/mock-2.log"
  fail "WebSocket turns over HTTP when the upstream refuses WebSockets"
fi

# --- No secret in the relay log -------------------------------------------------------------
# Stop the relay first so that its asynchronous log drain is flushed.
kill -TERM "$RELAY_PID" 2>/dev/null || true
for _ in $(seq 1 50); do
  kill -0 "$RELAY_PID" 2>/dev/null || break
  sleep 0.2
done
if kill -0 "$RELAY_PID" 2>/dev/null; then
  log "relay still running 10 s after SIGTERM; killing it"
  kill -KILL "$RELAY_PID" 2>/dev/null || true
fi
wait "$RELAY_PID" 2>/dev/null || true

# The relay's own log, and what its CLI commands printed on stderr.
if RELAY_API_KEY="$KEY" "$PY" - "$TMP/auth.json" "$TMP/master.key" "$PROMPT" "$ANSWER" \
  "$TMP/relay.log" "$TMP/cli.log" <<'PYEOF'; then
import json, os, sys

auth_path, master_key_path, prompt, answer = sys.argv[1:5]
log_paths = sys.argv[5:]
tokens = json.load(open(auth_path, encoding="utf-8")).get("tokens") or {}
secrets = {"the API key": os.environ["RELAY_API_KEY"]}
for name in ("access_token", "refresh_token", "id_token"):
    value = tokens.get(name)
    if not value:
        sys.exit(f"auth.json written by the mock has no tokens.{name}")
    secrets[f"the {name} of the imported account"] = value
if os.path.exists(master_key_path):
    key = open(master_key_path, encoding="utf-8", errors="replace").read().strip()
    if len(key) >= 16:
        secrets["the master key"] = key
secrets["the prompt text"] = prompt
secrets["the answer text"] = answer

leaks = 0
for log_path in log_paths:
    name = os.path.basename(log_path)
    lines = open(log_path, encoding="utf-8", errors="replace").read().splitlines()
    print(f"e2e: scanning {len(lines)} line(s) of {name} for {len(secrets)} secret(s)")
    for what, value in secrets.items():
        hits = [n for n, line in enumerate(lines, 1) if value in line]
        if hits:
            leaks += 1
            print(f"e2e: {name} contains {what} on line(s) {hits[:20]}")
            for n in hits[:3]:
                print(f"    {n}: {lines[n - 1].replace(value, '<' + what.upper() + '>')[:400]}")
sys.exit(1 if leaks else 0)
PYEOF
  pass "no secret, prompt or answer in the relay log"
else
  fail "the relay log contains secrets or content (see above)"
fi

# --- Failover happened ----------------------------------------------------------------------
# The clients above all passed although the preferred account answered every call with an
# overload inside a 200 stream: each such call must have moved to the healthy account.
if grep -q '"reason":"failed_in_stream:server_is_overloaded"' "$TMP/relay.log"; then
  pass "overloaded answers failed over to the healthy account, unseen by the clients"
else
  show_file "relay log" "$TMP/relay.log"
  fail "no request failed over from the overloaded account"
fi

# The WebSocket turns too: test_websocket.py's turns completed although the overloaded account
# is the pool's first choice, so some must have moved (their access lines carry the connection).
if "$PY" -c '
import json, sys
moved = [l for l in map(json.loads, filter(lambda l: l.startswith("{"), open(sys.argv[1])))
         if l.get("msg") == "request" and l.get("connection_id") and l.get("status") == 200
         and l.get("attempts", 0) >= 2]
sys.exit(0 if moved else "no WebSocket turn moved to another account")
' "$TMP/relay.log"; then
  pass "WebSocket turns failed over before their first output, unseen by the client"
else
  fail "no WebSocket turn failed over from the overloaded account"
fi

summary
[[ "$FAILED" -eq 0 ]]
