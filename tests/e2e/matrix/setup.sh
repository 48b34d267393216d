#!/usr/bin/env bash
# Installs the client matrix beside the clients of tests/e2e/setup.sh, into the git-ignored .e2e/
# (idempotent; a folder is reinstalled only when its package.json or package-lock.json changed):
#   .e2e/codex-<version>  each older Codex CLI of tests/e2e/matrix/codex-<version>/
#   .e2e/node-sdk         the OpenAI Node SDK (tests/e2e/node-sdk/)
# The newest Codex CLI is the one tests/e2e/setup.sh installs into .e2e/node.
set -euo pipefail

cd "$(dirname "$0")/../../.."
OUT=".e2e"
mkdir -p "$OUT"

log() { printf 'e2e setup: %s\n' "$*" >&2; }

# install SOURCE_DIR TARGET_DIR: npm install of SOURCE_DIR's package files into TARGET_DIR,
# skipped while the stamp (lock-file hash, node version, platform) is unchanged.
install() {
  local src="$1" dst="$2" stamp
  stamp="$(cat "$src/package.json" "$src/package-lock.json" | sha256sum | cut -d' ' -f1)-$(node --version)-$(uname -sm | tr ' ' '-')"
  if [[ -f "$dst/.e2e-stamp" && "$(cat "$dst/.e2e-stamp")" == "$stamp" ]]; then
    log "$dst up to date"
    return
  fi
  log "installing $src into $dst"
  rm -rf "$dst"
  mkdir -p "$dst"
  cp "$src/package.json" "$src/package-lock.json" "$dst/"
  npm install --prefix "$dst" --no-audit --no-fund --no-update-notifier --loglevel=error >&2
  printf '%s\n' "$stamp" >"$dst/.e2e-stamp"
}

for dir in tests/e2e/matrix/codex-*/; do
  version="$(basename "$dir")"
  install "${dir%/}" "$OUT/$version"
  "$OUT/$version/node_modules/.bin/codex" --version >&2 || { rm -f "$OUT/$version/.e2e-stamp"; exit 1; }
done
install tests/e2e/node-sdk "$OUT/node-sdk"
