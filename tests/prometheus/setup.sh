#!/usr/bin/env bash
# Installs Prometheus and promtool from Debian's packages (the `prometheus` package carries both)
# for the rule checks (check.sh) and the end-to-end scrape (run.sh). Idempotent: skips the
# install when both are on PATH. Prints the versions it will use.
#
# The package also installs a system service; nothing here uses it (the tests start their own
# Prometheus on free loopback ports), and in a container policy-rc.d keeps it from starting.
set -euo pipefail

log() { printf 'prometheus setup: %s\n' "$*" >&2; }

if ! command -v prometheus >/dev/null 2>&1 || ! command -v promtool >/dev/null 2>&1; then
  command -v apt-get >/dev/null 2>&1 || { log "needs apt-get (Debian) or prometheus and promtool on PATH"; exit 1; }
  as_root=()
  if [[ "$(id -u)" -ne 0 ]]; then as_root=(sudo); fi
  log "installing the prometheus package (Prometheus and promtool) with apt-get"
  export DEBIAN_FRONTEND=noninteractive
  "${as_root[@]}" apt-get update -qq >&2
  "${as_root[@]}" apt-get install -y -qq --no-install-recommends prometheus >&2
fi

log "$(prometheus --version 2>&1 | head -n 1)"
log "$(promtool --version 2>&1 | head -n 1)"
