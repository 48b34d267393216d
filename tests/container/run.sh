#!/usr/bin/env bash
# The container test: builds the Containerfile with podman around a release binary built
# beforehand, then runs the image as an operator would and checks what the image promises:
#   non-root as built, a read-only root filesystem, the store on a volume (and still there for the
#   next container), the master key from a mounted secret, the HEALTHCHECK, OCI labels, its size;
#   an account imported and an API key created with `podman exec … codex-relay`, a response
#   served through the mock upstream (on the host's loopback); and that `podman stop` (SIGTERM)
#   lets a stream in flight finish with its terminal event, refuses new connections meanwhile,
#   and ends with exit 0 within the drain grace.
#
#   bash tests/container/run.sh RELAY_BIN MOCK_BIN
#
# RELAY_BIN is a release build made on Debian bookworm (CI's one release build; the image's glibc
# matches), MOCK_BIN the mock upstream (`--example mock_upstream`). Installs podman and makes the
# Debian base first (tests/container/setup.sh). Prints `container: N passed, M failed`; exits
# non-zero on any failure. Everything it makes (containers, volume, secret, images, podman's
# storage) lives under target/container/run.* and a temporary folder, removed on exit.
set -euo pipefail
cd "$(dirname "$0")/../.."
CHECKS_NAME=container
source tests/support/checks.sh

take_binaries "$@"
BASE_TAR="target/container/debian-bookworm-slim.tar"
BASE_IMAGE="localhost/codex-relay-test/debian:bookworm-slim"
IMAGE="localhost/codex-relay-test:ci"
NAME="codex-relay-test"
# The relay's drain grace (server.shutdown_grace_secs, its default), then the queued usage write
# (5 s at most). `podman stop` waits longer before its SIGKILL, so a relay that overstays shows
# as a kill (exit 137), not as a pass.
GRACE_SECS=30
STOP_TIMEOUT_SECS=40
# An image past this has picked up something it should not carry (a toolchain, a second base).
MAX_IMAGE_MB=120
# Events of the mock's answers this far apart: a stream lasts a few seconds, long enough to stop
# the container in the middle of one.
EVENT_DELAY_MS=300

WORK=""
RUNROOT=""
STREAM_PID=""

abort() {
  fail "$*"
  show_logs
  summary
  exit 1
}
show_logs() {
  [[ -n "$WORK" ]] || return 0
  printf -- '----- relay container log (tail) -----\n'
  podman logs "$NAME" 2>&1 | tail -n 40 || true
  printf -- '----- mock upstream log (tail) -----\n'
  tail -n 20 "$WORK/mock.log" 2>/dev/null || true
  printf -- '----- end of logs -----\n'
}

# containers/image keeps a digest cache for root in /var/lib/containers/cache, whatever the
# storage settings: removed afterwards when this run made it (and its folders, if left empty).
BLOB_CACHE=/var/lib/containers/cache/blob-info-cache-v1.boltdb
[[ -e "$BLOB_CACHE" ]] && MADE_BLOB_CACHE=false || MADE_BLOB_CACHE=true

cleanup() {
  set +e
  [[ -n "$STREAM_PID" ]] && kill "$STREAM_PID" 2>/dev/null
  stop_mock
  if [[ -n "$WORK" ]]; then
    podman rm --all --force --time 0 >/dev/null 2>&1
    podman volume rm --all --force >/dev/null 2>&1
    podman secret rm --all >/dev/null 2>&1
    podman rmi --all --force >/dev/null 2>&1
    # Overlay mounts left by a podman that died mid-run would keep `rm` from the folder.
    grep -F " $WORK/" /proc/mounts | cut -d' ' -f2 | sort -r | xargs -r -n1 umount -l
    rm -rf "$WORK"
  fi
  [[ -n "$RUNROOT" ]] && rm -rf "$RUNROOT"
  if "$MADE_BLOB_CACHE"; then
    rm -f "$BLOB_CACHE"
    rmdir "$(dirname "$BLOB_CACHE")" /var/lib/containers 2>/dev/null
  fi
  return 0
}
trap cleanup EXIT

# --- Podman, configured for this run alone ------------------------------------------------------
bash tests/container/setup.sh || abort "setup (tests/container/setup.sh) failed"
mkdir -p target/container
WORK="$(realpath "$(mktemp -d target/container/run.XXXXXX)")"
# podman refuses a run root of more than 50 characters: it goes to the system's temporary folder.
RUNROOT="$(mktemp -d)"
# Podman's storage, state and temporary files stay in this run's folders, so nothing outlives the
# run and other podman users on the machine are untouched.
cat >"$WORK/storage.conf" <<EOF
[storage]
driver = "overlay"
graphroot = "$WORK/storage"
runroot = "$RUNROOT/storage"
EOF
# Why each line, on CI's machines (root in a VM without systemd, cgroup v1 with cgroup2 also
# mounted, and no CAP_SYS_RESOURCE):
#   default_ulimits  podman's defaults (nofile 1048576, nproc above what conmon runs with) can
#                    only be set with CAP_SYS_RESOURCE: pass the host's open-file limit and a
#                    process limit below conmon's instead;
#   runtime          crun 1.8 refuses this hybrid cgroup layout; runc runs on it;
#   cgroup_manager   there is no systemd to ask;
#   tmp_dir          podman's state would go to /run/libpod.
cat >"$WORK/containers.conf" <<EOF
[containers]
default_ulimits = ["nofile=$(ulimit -Hn):$(ulimit -Hn)", "nproc=32768:32768"]

[engine]
runtime = "runc"
cgroup_manager = "cgroupfs"
events_logger = "file"
tmp_dir = "$RUNROOT/libpod"
EOF
export CONTAINERS_CONF="$WORK/containers.conf" CONTAINERS_STORAGE_CONF="$WORK/storage.conf"

# --- The image ----------------------------------------------------------------------------------
start=$SECONDS
podman import --quiet "$BASE_TAR" "$BASE_IMAGE" >/dev/null || abort "podman import of $BASE_TAR failed"
# The build context is a folder holding the binary alone (BINARY=prebuilt); RUST_IMAGE keeps its
# public default: a build that tried the unused source stage would fail to pull it.
mkdir "$WORK/context"
cp "$RELAY_BIN" "$WORK/context/codex-relay"
VERSION="$(sed -n 's/^version = "\(.*\)"$/\1/p' Cargo.toml | head -n1)"
REVISION="$(git rev-parse HEAD 2>/dev/null || echo unknown)"
# Docker's image format: the OCI format has no HEALTHCHECK, and podman would drop it. No network
# for the RUN step: it needs none, and podman would otherwise make a bridge and firewall rules.
if ! podman build --format docker --pull=never --network none --file Containerfile \
  --build-arg BINARY=prebuilt --build-arg RUNTIME_IMAGE="$BASE_IMAGE" \
  --build-arg VERSION="$VERSION" --build-arg REVISION="$REVISION" \
  --tag "$IMAGE" "$WORK/context" >"$WORK/build.log" 2>&1; then
  tail -n 30 "$WORK/build.log"
  abort "podman build failed"
fi
log "imported the base and built $IMAGE in $((SECONDS - start)) s"

inspect() { podman image inspect --format "$1" "$IMAGE"; }
size_mb=$(($(inspect '{{.Size}}') / 1000000))
log "image size: $size_mb MB (base $(($(podman image inspect --format '{{.Size}}' "$BASE_IMAGE") / 1000000)) MB)"
check "the image stays small ($size_mb MB, at most $MAX_IMAGE_MB)" test "$size_mb" -le "$MAX_IMAGE_MB"
check "the image runs as user 10001, not root" test "$(inspect '{{.Config.User}}')" = "10001:10001"
labels_ok() {
  [[ "$(inspect '{{index .Labels "org.opencontainers.image.title"}}')" == codex-relay &&
    "$(inspect '{{index .Labels "org.opencontainers.image.licenses"}}')" == Apache-2.0 &&
    "$(inspect '{{index .Labels "org.opencontainers.image.version"}}')" == "$VERSION" &&
    "$(inspect '{{index .Labels "org.opencontainers.image.revision"}}')" == "$REVISION" &&
    -n "$(inspect '{{index .Labels "org.opencontainers.image.description"}}')" ]]
}
check "OCI labels: title, description, licenses, version $VERSION, revision" labels_ok

# --- The mock upstream, on the host's loopback ----------------------------------------------------
start_mock "$MOCK_BIN" "$WORK" --event-delay-ms "$EVENT_DELAY_MS" || abort "the mock upstream did not start"
# The relay's ports must be known before it starts (the HEALTHCHECK reads its listen address).
read -r RELAY_PORT ADMIN_PORT < <(free_ports 2)

# --- The relay's container ------------------------------------------------------------------------
head -c 32 /dev/urandom | base64 >"$WORK/master.key"
podman secret create codex-relay-master-key "$WORK/master.key" >/dev/null
podman volume create codex-relay-data >/dev/null
# --network host: the relay reaches the mock on the host's loopback and clients reach the relay
# there, with no bridge, no NAT rules and no address beyond loopback. It binds loopback ports of
# its own (the image's default, 0.0.0.0:8080, would take the host's port 8080).
# The secret's target is outside /run/secrets: podman 4.3 bind-mounts /run/secrets read-only under
# --read-only and then cannot mount a file into it.
# --health-interval=disable: podman runs interval health checks from systemd timers, and there is
# no systemd here; the check itself runs below with `podman healthcheck run`.
RUN_ARGS=(--network host --read-only --health-interval=disable
  --volume codex-relay-data:/data
  --secret codex-relay-master-key,uid=10001,mode=0400,target=/run/codex-relay/master-key
  --env CODEX_RELAY_MASTER_KEY_FILE=/run/codex-relay/master-key
  --env CODEX_RELAY__SERVER__LISTEN="127.0.0.1:$RELAY_PORT"
  --env CODEX_RELAY__ADMIN__LISTEN="127.0.0.1:$ADMIN_PORT"
  --env CODEX_RELAY__UPSTREAM__BASE_URL="$MOCK_URL"
  --env CODEX_RELAY__OAUTH__ISSUER="$MOCK_URL")
# (podman still says, on stderr, that it found no systemd for the disabled timer.)
podman run --detach --name "$NAME" "${RUN_ARGS[@]}" "$IMAGE" >/dev/null 2>"$WORK/run.err" ||
  abort "podman run failed: $(cat "$WORK/run.err")"

healthz() { curl -fsS --max-time 2 "http://127.0.0.1:$RELAY_PORT/healthz" >/dev/null 2>&1; }
for _ in $(seq 1 100); do
  healthz && break
  [[ "$(podman inspect --format '{{.State.Running}}' "$NAME")" == true ]] ||
    abort "the relay's container exited at startup"
  sleep 0.2
done
check "GET /healthz answers from the container" healthz
check "the image's HEALTHCHECK reports healthy" podman healthcheck run "$NAME"

pid="$(podman inspect --format '{{.State.Pid}}' "$NAME")"
uid="$(ps -o uid= -p "$pid" | tr -d ' ')"
check "the relay runs as uid $uid, not root" test "$uid" = 10001
check "the root filesystem is read-only" \
  test "$(podman inspect --format '{{.HostConfig.ReadonlyRootfs}}' "$NAME")" = true
check "nothing can be written outside /data" \
  podman exec "$NAME" bash -c '! touch /usr/local/bin/x 2>/dev/null && ! touch /x 2>/dev/null'
# podman's --read-only mounts tmpfs on /tmp, /var/tmp and /run; docker's does not: the relay must
# not need them.
check "the relay writes nothing to /tmp or /var/tmp" \
  test -z "$(podman exec "$NAME" find /tmp /var/tmp -mindepth 1)"
check "the master key comes from the mounted secret, none is generated in /data" \
  bash -c "podman logs $NAME 2>&1 | grep -q 'master key read from file' &&
    ! podman exec $NAME test -e /data/master.key"

# --- An account, a key, a response --------------------------------------------------------------
ACCOUNT_ID="$(podman exec -i "$NAME" codex-relay account import - <"$WORK/auth.json" 2>"$WORK/cli.log")" ||
  abort "codex-relay account import inside the container failed: $(cat "$WORK/cli.log")"
pass "an account imported with podman exec (account $ACCOUNT_ID)"
KEY="$(podman exec "$NAME" codex-relay key create --name container-test 2>>"$WORK/cli.log")" ||
  abort "codex-relay key create inside the container failed"
pass "an API key created with podman exec"

respond() { # respond STREAM OUT: POST /v1/responses; the HTTP status on stdout
  curl -sS --max-time 30 -o "$2" -w '%{http_code}' "http://127.0.0.1:$RELAY_PORT/v1/responses" \
    -H "Authorization: Bearer $KEY" -H 'Content-Type: application/json' \
    -d "{\"model\":\"gpt-5.5\",\"input\":\"hello from a container\",\"stream\":$1}" || true
}
# The server picks up the new account and key within its sync interval (2 s).
status=""
for _ in $(seq 1 20); do
  status="$(respond false "$WORK/response.json")"
  [[ "$status" == 200 ]] && break
  sleep 0.5
done
check "POST /v1/responses is served through the mock upstream (status $status)" \
  bash -c "[[ '$status' == 200 ]] && grep -q '\"status\":\"completed\"' '$WORK/response.json'"

# --- SIGTERM drains the stream in flight ----------------------------------------------------------
curl -sSN --max-time 60 -o "$WORK/stream.txt" "http://127.0.0.1:$RELAY_PORT/v1/responses" \
  -H "Authorization: Bearer $KEY" -H 'Content-Type: application/json' \
  -d '{"model":"gpt-5.5","input":"a slow answer","stream":true}' 2>"$WORK/stream.err" &
STREAM_PID=$!
for _ in $(seq 1 100); do
  grep -q 'event: response.created' "$WORK/stream.txt" 2>/dev/null && break
  sleep 0.1
done
grep -q 'event: response.created' "$WORK/stream.txt" || abort "the slow stream never started"
stop_start=$SECONDS
podman stop --time "$STOP_TIMEOUT_SECS" "$NAME" >/dev/null 2>"$WORK/stop.err" &
STOP_PID=$!
refused=false
for _ in $(seq 1 30); do
  kill -0 "$STREAM_PID" 2>/dev/null || break
  code=0
  curl -sS --max-time 1 -o /dev/null "http://127.0.0.1:$RELAY_PORT/healthz" 2>/dev/null || code=$?
  # curl's 7: the connection was refused.
  if [[ "$code" == 7 ]] && kill -0 "$STREAM_PID" 2>/dev/null; then
    refused=true
    break
  fi
  sleep 0.1
done
check "after SIGTERM a new connection is refused while the stream still runs" $refused
stream_status=0
wait "$STREAM_PID" || stream_status=$?
STREAM_PID=""
check "the stream in flight ends with its terminal event (curl exit $stream_status)" \
  bash -c "[[ $stream_status == 0 ]] && grep -q 'event: response.completed' '$WORK/stream.txt'"
wait "$STOP_PID" || true
stop_secs=$((SECONDS - stop_start))
exit_code="$(podman inspect --format '{{.State.ExitCode}}' "$NAME")"
check "the container exits 0 (exit $exit_code) within the ${GRACE_SECS} s grace (${stop_secs} s)" \
  bash -c "[[ '$exit_code' == 0 && $stop_secs -le $GRACE_SECS ]]"
check "the relay logged its stop" bash -c "podman logs $NAME 2>&1 | grep -q '\"msg\":\"stopped\"'"

# --- Afterwards ------------------------------------------------------------------------------------
# A new container on the same volume and secret opens the same store.
listed="$(podman run --rm "${RUN_ARGS[@]}" "$IMAGE" account list 2>"$WORK/list.err" || true)"
check "the store outlives the container: the next one lists the account" \
  bash -c "grep -qF -- '$ACCOUNT_ID' <<<'$listed'"
# The probe is not vacuous: a container whose relay is not running is unhealthy.
podman run --detach --name "$NAME-idle" --network host --health-interval=disable \
  --env CODEX_RELAY__SERVER__LISTEN="127.0.0.1:$RELAY_PORT" --entrypoint sleep "$IMAGE" 60 \
  >/dev/null 2>>"$WORK/run.err"
check "the HEALTHCHECK fails while no relay listens" bash -c "! podman healthcheck run $NAME-idle >/dev/null 2>&1"
no_secrets() {
  local logs secret
  logs="$(podman logs "$NAME" 2>&1)"
  for secret in "$KEY" "$(cat "$WORK/master.key")" \
    "$(python3 -c 'import json,sys; t=json.load(open(sys.argv[1]))["tokens"]; print(t["access_token"]); print(t["refresh_token"])' "$WORK/auth.json")"; do
    while IFS= read -r line; do
      [[ -n "$line" && "$logs" == *"$line"* ]] && return 1
    done <<<"$secret"
  done
  return 0
}
check "no API key, token or master key in the container's log" no_secrets

summary
((FAILED == 0))
