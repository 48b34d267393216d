# The client matrix, sourced by tests/e2e/run.sh once the relay runs (it uses run.sh's pass,
# fail, show_file, $TMP, $CODEX_WORK, $CODEX_HOME_DIR, $RELAY_PORT and $KEY). Installed by
# tests/e2e/matrix/setup.sh. Each check counts once:
#   - every Codex CLI of the matrix (the newest from .e2e/node, the older ones from
#     .e2e/codex-<version>) answers a plain turn and a tool-call loop through a custom provider;
#   - every one compacts remotely through the built-in provider pointed at the relay
#     (`openai_base_url`, a low `model_auto_compact_token_limit`), and the turn after the
#     compaction succeeds (the mock answers a conversation holding a compaction item with
#     "Carrying on after compaction.");
#   - every one shows the caller's rate limits in `codex app-server` (tests/e2e/codex_limits.py);
#   - the OpenAI Node SDK (tests/e2e/node-sdk/sdk.test.mjs, `node --test`).

BUILTIN_HOME="$TMP/codex-home-builtin"
mkdir -p "$BUILTIN_HOME"
cat >"$BUILTIN_HOME/config.toml" <<TOML
model = "gpt-5.5"
openai_base_url = "http://127.0.0.1:$RELAY_PORT/v1"
# The mock reports about 10 000 input tokens for a Codex turn: the first answer crosses this,
# so the tool-call loop compacts before its follow-up.
model_auto_compact_token_limit = 3000
TOML

# matrix_turn LABEL CODEX HOME EXPECTED PROMPT: `codex exec --json` of PROMPT must end its turn
# with the agent message EXPECTED. Built-in provider homes get the key as CODEX_API_KEY.
matrix_turn() {
  local label="$1" codex="$2" home="$3" expected="$4" prompt="$5" status=0
  local out="$TMP/matrix-$label.out" err="$TMP/matrix-$label.err"
  local key_var=RELAY_API_KEY
  [[ "$home" == "$BUILTIN_HOME" ]] && key_var=CODEX_API_KEY
  (
    cd "$CODEX_WORK"
    env CODEX_HOME="$home" "$key_var=$KEY" timeout 120 "$codex" exec --skip-git-repo-check \
      --ephemeral --json "$prompt" </dev/null >"$out" 2>"$err"
  ) || status=$?
  if [[ "$status" -eq 0 ]] && "$PY" - "$out" "$expected" <<'PYEOF'; then
import json, sys

path, expected = sys.argv[1], sys.argv[2]
events = [json.loads(line) for line in open(path, encoding="utf-8") if line.strip()]
said = [e["item"].get("text", "").strip() for e in events
        if e.get("type") == "item.completed" and (e.get("item") or {}).get("type") == "agent_message"]
if expected not in said:
    sys.exit(f"no agent_message {expected!r} (got {said!r})")
if not any(e.get("type") == "turn.completed" for e in events):
    sys.exit("no turn.completed event")
PYEOF
    pass "$label"
  else
    show_file "$label stdout" "$out"
    show_file "$label stderr" "$err"
    fail "$label (exit status $status; expected '$expected')"
  fi
}

MATRIX=(".e2e/node")
for dir in .e2e/codex-*/; do MATRIX+=("${dir%/}"); done
for dir in "${MATRIX[@]}"; do
  codex="$(pwd)/$dir/node_modules/.bin/codex"
  version="$("$codex" --version 2>/dev/null | awk '{print $NF}')"
  log "client matrix: Codex CLI $version"
  matrix_turn "codex $version: plain turn" "$codex" "$CODEX_HOME_DIR" "$ANSWER" "say hi"
  matrix_turn "codex $version: tool-call loop" "$codex" "$CODEX_HOME_DIR" \
    "Tool result received." "please use a tool"
  matrix_turn "codex $version: remote compaction (openai_base_url)" "$codex" "$BUILTIN_HOME" \
    "Carrying on after compaction." "please use a tool"
done

# The limits Codex shows are the caller's (tests/e2e/codex_limits.py): per CLI, a fresh key with
# day and month token quotas spends about a quarter of its day and a tenth of its month on one
# turn (the mock reports about 10 000 tokens), then the CLI's app server must report the key's
# numbers, never the mock accounts' (12.5% and 3%).
LIMITS_DAY=40000
LIMITS_MONTH=100000
for dir in "${MATRIX[@]}"; do
  codex="$(pwd)/$dir/node_modules/.bin/codex"
  version="$("$codex" --version 2>/dev/null | awk '{print $NF}')"
  label="codex $version: app-server shows the caller's rate limits"
  out="$TMP/limits-$version.out"
  if limits_key="$("$RELAY" key create --name "e2e-limits-$version" \
    --daily-tokens "$LIMITS_DAY" --monthly-tokens "$LIMITS_MONTH" 2>"$out")" &&
    timeout 300 "$PY" tests/e2e/codex_limits.py "$codex" "$RELAY_PORT" "$limits_key" \
      "$TMP/codex-home-limits-$version" "$LIMITS_DAY" "$LIMITS_MONTH" >"$out" 2>&1; then
    pass "$label"
  else
    show_file "$label" "$out"
    fail "$label"
  fi
done

log "running the OpenAI Node SDK test"
cp tests/e2e/node-sdk/sdk.test.mjs .e2e/node-sdk/
if RELAY_BASE_URL="http://127.0.0.1:$RELAY_PORT/v1" RELAY_API_KEY="$KEY" \
  timeout 300 node --test .e2e/node-sdk/sdk.test.mjs >"$TMP/node-sdk.out" 2>&1; then
  pass "OpenAI Node SDK (node --test)"
else
  show_file "node --test" "$TMP/node-sdk.out"
  fail "OpenAI Node SDK (node --test)"
fi
