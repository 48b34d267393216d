#!/usr/bin/env bash
# Installs the real clients used by the codex-relay end-to-end tests into the
# repo-local, git-ignored folder .e2e/ (idempotent; skips what is already done):
#   .e2e/venv  Python venv with the OpenAI Python SDK and pytest (tests/e2e/requirements.txt)
#   .e2e/node  the Codex CLI from npm (tests/e2e/package.json + package-lock.json)
# Everything comes from the package registries (PyPI, npm); nothing else is downloaded.
set -euo pipefail

cd "$(dirname "$0")/../.."
ROOT="$(pwd)"
E2E_SRC="tests/e2e"
OUT=".e2e"
mkdir -p "$OUT"

log() { printf 'e2e setup: %s\n' "$*" >&2; }

hash_of() { cat "$@" | sha256sum | cut -d' ' -f1; }

need() {
  command -v "$1" >/dev/null 2>&1 || { log "missing required tool: $1"; exit 1; }
}
need python3
need node
need npm
need sha256sum

# --- Python: OpenAI SDK + pytest -------------------------------------------
PY="${PYTHON:-python3}"
VENV="$OUT/venv"
py_stamp="$(hash_of "$E2E_SRC/requirements.txt")-$("$PY" -c 'import sys; print("%d.%d.%d" % sys.version_info[:3])')"
if [[ -x "$VENV/bin/python" && -f "$VENV/.e2e-stamp" && "$(cat "$VENV/.e2e-stamp")" == "$py_stamp" ]]; then
  log "python venv up to date ($VENV)"
else
  log "creating python venv in $VENV"
  rm -rf "$VENV"
  "$PY" -m venv "$VENV"
  "$VENV/bin/python" -m pip install --quiet --disable-pip-version-check --no-input \
    -r "$E2E_SRC/requirements.txt"
  "$VENV/bin/python" -c 'import openai, pytest; print("openai", openai.__version__, "pytest", pytest.__version__)' >&2
  printf '%s\n' "$py_stamp" >"$VENV/.e2e-stamp"
fi

# --- Node: Codex CLI --------------------------------------------------------
NODE_DIR="$OUT/node"
node_stamp="$(hash_of "$E2E_SRC/package.json" "$E2E_SRC/package-lock.json")-$(node --version)-$(uname -sm | tr ' ' '-')"
CODEX="$NODE_DIR/node_modules/.bin/codex"
if [[ -x "$CODEX" && -f "$NODE_DIR/.e2e-stamp" && "$(cat "$NODE_DIR/.e2e-stamp")" == "$node_stamp" ]]; then
  log "codex CLI up to date ($NODE_DIR)"
else
  log "installing the codex CLI into $NODE_DIR"
  rm -rf "$NODE_DIR"
  mkdir -p "$NODE_DIR"
  cp "$E2E_SRC/package.json" "$E2E_SRC/package-lock.json" "$NODE_DIR/"
  # The native binary arrives as a platform optionalDependency from the npm registry.
  npm install --prefix "$NODE_DIR" --no-audit --no-fund --no-update-notifier --loglevel=error >&2
  printf '%s\n' "$node_stamp" >"$NODE_DIR/.e2e-stamp"
fi

# --- Check that the clients run ------------------------------------------------
if ! codex_version="$("$CODEX" --version 2>&1)"; then
  log "codex CLI does not run: $codex_version"
  log "(its native binary comes from a platform optionalDependency; is this platform supported?)"
  rm -f "$NODE_DIR/.e2e-stamp"
  exit 1
fi
log "$codex_version ready at $ROOT/$CODEX"
"$VENV/bin/python" -c 'import openai, pytest, websockets' || { rm -f "$VENV/.e2e-stamp"; exit 1; }
