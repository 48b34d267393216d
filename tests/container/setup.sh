#!/usr/bin/env bash
# Installs what the container test needs and makes its base image (idempotent; skips what is
# already done):
#   podman, runc    from Debian's packages, to build the Containerfile and run the image
#   debootstrap     from Debian's packages, to make the runtime base without a registry
#   target/container/debian-bookworm-slim.tar
#                   a Debian bookworm `minbase` root filesystem from Debian's package mirror,
#                   trimmed as debian:bookworm-slim is (no apt lists or caches, docs, man pages,
#                   locales), for `podman import`. Kept in the git-ignored target/ folder.
# No container registry is reachable from CI's machines: the base is made from packages instead.
set -euo pipefail

cd "$(dirname "$0")/../.."
OUT="target/container"
BASE_TAR="$OUT/debian-bookworm-slim.tar"
MIRROR="${DEBIAN_MIRROR:-http://deb.debian.org/debian}"

log() { printf 'container setup: %s\n' "$*" >&2; }

# --- Tools ----------------------------------------------------------------------------------
missing=()
for tool in podman runc debootstrap; do
  command -v "$tool" >/dev/null 2>&1 || missing+=("$tool")
done
if ((${#missing[@]})); then
  log "installing ${missing[*]} from Debian's packages"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  # Without recommends: podman's pull in slirp4netns, fuse-overlayfs, buildah's docs and more,
  # none of which a root podman with host networking uses.
  apt-get install -y -qq --no-install-recommends podman runc debootstrap >/dev/null
fi
log "$(podman --version), runc $(runc --version | head -n1 | awk '{print $3}'), debootstrap $(dpkg-query -W -f '${Version}' debootstrap)"

# --- Base image -----------------------------------------------------------------------------
if [[ -s "$BASE_TAR" ]]; then
  log "base root filesystem up to date ($BASE_TAR)"
  exit 0
fi
mkdir -p "$OUT"
ROOTFS="$(mktemp -d "$OUT/rootfs.XXXXXX")"
trap 'rm -rf "$ROOTFS"' EXIT
log "debootstrap --variant=minbase bookworm from $MIRROR"
start=$SECONDS
debootstrap --variant=minbase bookworm "$ROOTFS" "$MIRROR" >"$OUT/debootstrap.log" 2>&1 || {
  tail -n 30 "$OUT/debootstrap.log" >&2
  log "debootstrap failed (full log: $OUT/debootstrap.log)"
  exit 1
}
# What debian:bookworm-slim leaves out too: nothing at run time reads these.
rm -rf "$ROOTFS"/var/cache/apt/* "$ROOTFS"/var/lib/apt/lists/* "$ROOTFS"/var/log/* \
  "$ROOTFS"/usr/share/doc/* "$ROOTFS"/usr/share/man/* "$ROOTFS"/usr/share/info/* \
  "$ROOTFS"/usr/share/locale/* "$ROOTFS"/tmp/* "$ROOTFS"/var/tmp/*
tar --numeric-owner --xattrs -C "$ROOTFS" -cf "$BASE_TAR.partial" .
mv "$BASE_TAR.partial" "$BASE_TAR"
log "made $BASE_TAR ($(du -h "$BASE_TAR" | cut -f1)) in $((SECONDS - start)) s"
