#!/usr/bin/env bash
# Installs the stateful clients of the codex-relay end-to-end tests into the git-ignored .e2e/
# (idempotent; skips what is already up to date), from the package registries only:
#   .e2e/stateful-node  the Vercel AI SDK (package.json + package-lock.json, `npm ci`)
#   .e2e/agents-venv    the OpenAI Agents SDK for Python (requirements-agents.txt)
set -euo pipefail

cd "$(dirname "$0")/../../.."
SRC="tests/e2e/stateful"
OUT=".e2e"
mkdir -p "$OUT"

log() { printf 'e2e stateful setup: %s\n' "$*" >&2; }
hash_of() { cat "$@" | sha256sum | cut -d' ' -f1; }
for tool in python3 node npm sha256sum; do
  command -v "$tool" >/dev/null 2>&1 || { log "missing required tool: $tool"; exit 1; }
done

# --- Node: the Vercel AI SDK ---------------------------------------------------
NODE_DIR="$OUT/stateful-node"
node_stamp="$(hash_of "$SRC/package.json" "$SRC/package-lock.json")-$(node --version)"
if [[ -f "$NODE_DIR/.e2e-stamp" && "$(cat "$NODE_DIR/.e2e-stamp")" == "$node_stamp" ]]; then
  log "Vercel AI SDK up to date ($NODE_DIR)"
else
  log "installing the Vercel AI SDK into $NODE_DIR"
  rm -rf "$NODE_DIR"
  mkdir -p "$NODE_DIR"
  cp "$SRC/package.json" "$SRC/package-lock.json" "$NODE_DIR/"
  npm ci --prefix "$NODE_DIR" --no-audit --no-fund --no-update-notifier --loglevel=error >&2
  printf '%s\n' "$node_stamp" >"$NODE_DIR/.e2e-stamp"
fi

# --- Python: the OpenAI Agents SDK ---------------------------------------------
PY="${PYTHON:-python3}"
VENV="$OUT/agents-venv"
py_stamp="$(hash_of "$SRC/requirements-agents.txt")-$("$PY" -c 'import sys; print("%d.%d.%d" % sys.version_info[:3])')"
if [[ -x "$VENV/bin/python" && -f "$VENV/.e2e-stamp" && "$(cat "$VENV/.e2e-stamp")" == "$py_stamp" ]]; then
  log "Agents SDK venv up to date ($VENV)"
else
  log "creating the Agents SDK venv in $VENV"
  rm -rf "$VENV"
  "$PY" -m venv "$VENV"
  "$VENV/bin/python" -m pip install --quiet --disable-pip-version-check --no-input \
    -r "$SRC/requirements-agents.txt"
  printf '%s\n' "$py_stamp" >"$VENV/.e2e-stamp"
fi
"$VENV/bin/python" -c 'import agents' || { rm -f "$VENV/.e2e-stamp"; exit 1; }
