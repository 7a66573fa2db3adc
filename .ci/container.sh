#!/usr/bin/env bash
# CI container check: build the Dockerfile with a daemonless builder from
# Debian's packages (buildah, vfs storage, chroot isolation: no daemon, no
# overlay or user-namespace setup needed), then start the image in sandbox mode
# and require /healthz to answer inside the container. The script runs as root
# (via sudo when CI is not root) because debootstrap and mounting the base
# image's root need it; the build itself needs no privileges beyond that.
# Phases print their elapsed time; a failed phase prints its log and fails CI.
#
# No container registry is reachable from CI, so the Node base image is
# assembled here: a Debian bookworm minbase (debootstrap) with this machine's
# own Node + npm copied in and a "node" user, like the official node image.
# The Dockerfile is the same one users build; only its NODE_IMAGE build
# argument differs (users keep the default, the official node image).
set -euo pipefail
cd "$(dirname "$0")/.."

started=$(date +%s)
say() { echo "container: $* (+$(( $(date +%s) - started ))s)"; }

# debootstrap and mounting the new image's root need root: re-run under sudo
# where CI is not root already. buildah itself needs no daemon.
if [ "$(id -u)" != 0 ]; then exec sudo -E bash "$0" "$@"; fi
export DEBIAN_FRONTEND=noninteractive
need=()
command -v buildah >/dev/null || need+=(buildah)
command -v debootstrap >/dev/null || need+=(debootstrap)
if [ ${#need[@]} -gt 0 ]; then
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
fi
say "tools ready: $(buildah --version)"

work=$(mktemp -d /tmp/faxbridge-container.XXXXXX)
storage="$work/storage"
B=(buildah --root "$storage/root" --runroot "$storage/run" --storage-driver vfs)
ctr=""
cleanup() {
  [ -n "$ctr" ] && "${B[@]}" rm "$ctr" >/dev/null 2>&1 || true
  "${B[@]}" rm --all >/dev/null 2>&1 || true
  # An interrupted debootstrap leaves /proc mounted in the base's root.
  awk -v w="$work" 'index($2, w) == 1 { print $2 }' /proc/mounts | sort -r | while read -r m; do umount -l "$m" || true; done
  rm -rf --one-file-system "$work" || true
}
trap cleanup EXIT

# 1. The base: Debian minbase + the build tools better-sqlite3 needs when no
#    prebuilt addon can be downloaded (the Dockerfile's apt-get then finds
#    them installed), + the host's Node, its headers and npm, + user node
#    (uid 1000). debootstrap writes straight into the new image's root.
mirror=$(sed -n 's/^URIs: *//p' /etc/apt/sources.list.d/debian.sources 2>/dev/null | head -1)
mirror=${mirror:-http://deb.debian.org/debian}
base_ctr=$("${B[@]}" from scratch)
assemble() {
  rootfs=$("${B[@]}" mount "$base_ctr")
  debootstrap --variant=minbase --include=ca-certificates,python3,make,g++ \
    bookworm "$rootfs" "$mirror" >"$work/debootstrap.log" 2>&1 \
    || { tail -50 "$work/debootstrap.log"; return 1; }
  install -m 0755 "$(command -v node)" "$rootfs/usr/local/bin/node"
  npm_dir=$(dirname "$(dirname "$(readlink -f "$(command -v npm)")")")
  mkdir -p "$rootfs/usr/local/lib/node_modules" "$rootfs/usr/local/include"
  cp -a "$npm_dir" "$rootfs/usr/local/lib/node_modules/npm"
  ln -sf ../lib/node_modules/npm/bin/npm-cli.js "$rootfs/usr/local/bin/npm"
  ln -sf ../lib/node_modules/npm/bin/npx-cli.js "$rootfs/usr/local/bin/npx"
  # node-gyp needs Node's headers; nodejs.org is not reachable to fetch them.
  node_prefix=$(dirname "$(dirname "$(readlink -f "$(command -v node)")")")
  cp -a "$node_prefix/include/node" "$rootfs/usr/local/include/node"
  # Trust what this machine trusts: where egress goes through a TLS-inspecting
  # proxy, its CA is in the host's bundle, and npm ci in the build needs it.
  cp /etc/ssl/certs/ca-certificates.crt "$rootfs/etc/ssl/certs/ca-certificates.crt"
  chroot "$rootfs" /bin/sh -c 'groupadd --gid 1000 node && useradd --uid 1000 --gid node --shell /bin/bash --create-home node'
  rm -rf "$rootfs/var/cache/apt/archives/"*.deb "$rootfs/var/lib/apt/lists/"*
  chroot "$rootfs" /usr/local/bin/node --version
  "${B[@]}" umount "$base_ctr" >/dev/null
}
assemble
say "debootstrap done"
"${B[@]}" config --env PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
  --env NODE_EXTRA_CA_CERTS=/etc/ssl/certs/ca-certificates.crt \
  --env NPM_CONFIG_CAFILE=/etc/ssl/certs/ca-certificates.crt \
  --env NPM_CONFIG_NODEDIR=/usr/local --cmd node "$base_ctr"
"${B[@]}" commit --quiet "$base_ctr" localhost/faxbridge-node-base:ci >/dev/null
"${B[@]}" rm "$base_ctr" >/dev/null
say "base image committed"

# 2. The Dockerfile, as users build it, but FROM the assembled base.
"${B[@]}" bud --isolation chroot --format docker --layers=false \
  --build-arg NODE_IMAGE=localhost/faxbridge-node-base:ci \
  -t localhost/faxbridge:ci -f Dockerfile . >"$work/build.log" 2>&1 \
  || { tail -80 "$work/build.log"; exit 1; }
say "image built"
"${B[@]}" inspect --type image --format '{{.Docker.Config.Healthcheck}}' localhost/faxbridge:ci \
  | grep -q healthz || { echo "container: HEALTHCHECK missing from the image"; exit 1; }

# 3. Start it in sandbox mode (no credentials) and ask /healthz from inside:
#    one shell in the container starts the daemon, polls, then stops it.
free_port() { node -e 'const s=require("net").createServer().listen(0,"127.0.0.1",()=>{console.log(s.address().port);s.close();})'; }
port=$(free_port); smtp_port=$(free_port); emu_port=$(free_port)
ctr=$("${B[@]}" from localhost/faxbridge:ci)
probe="
const deadline = Date.now() + 90000;
const once = () => fetch('http://127.0.0.1:$port/healthz').then(async (r) => {
  console.log('healthz', r.status, await r.text()); process.exit(r.ok ? 0 : 1);
}, () => Date.now() > deadline ? process.exit(1) : setTimeout(once, 500));
once();"
set +e
"${B[@]}" run --isolation chroot \
  --env FAXBRIDGE_HTTP_HOST=127.0.0.1 --env FAXBRIDGE_HTTP_PORT="$port" \
  --env FAXBRIDGE_SMTP_HOST=127.0.0.1 --env FAXBRIDGE_SMTP_PORT="$smtp_port" \
  --env FAXBRIDGE_EMULATOR_PORT="$emu_port" --env PROBE="$probe" \
  "$ctr" -- sh -c 'faxbridge run >/tmp/daemon.log 2>&1 & pid=$!
    node -e "$PROBE"; rc=$?
    kill -TERM $pid; wait $pid
    grep -q "SANDBOX" /tmp/daemon.log || { echo "not in sandbox mode"; rc=1; }
    [ $rc = 0 ] || tail -40 /tmp/daemon.log
    exit $rc'
rc=$?
set -e
[ "$rc" = 0 ] || { echo "container: /healthz did not answer in sandbox mode inside the container"; exit 1; }
say "sandbox mode answers /healthz inside the container"
