#!/usr/bin/env bash
# Builds what the node bed needs besides the Kubernetes binaries (test/controlplane/build.sh builds kubelet,
# kube-scheduler and kube-proxy with the control plane), into the cache directory outside the clone:
#   1. Debian packages: containerd, runc, CNI plugins, iptables, busybox-static, gcc (installed when missing);
#   2. CoreDNS from test/node/coredns (Go module proxy, version pinned in test/controlplane/versions.env);
#   3. a static `pause` from the k8s.io/kubernetes module's build/pause/linux/pause.c (the sandbox image);
#   4. image archives (`docker save` format, see mkimage.sh): pause, and node-test (busybox + Node, for the tests).
# A no-op when the stamp of its inputs matches. Prints the output directory on its last line of stdout; progress and
# failures (naming the step) go to stderr.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
. "$here/../controlplane/versions.env"
. "$here/../controlplane/goenv.sh"

step=setup
fail() { echo "node bed: step '$step' failed: $*" >&2; exit 1; }
trap 'rc=$?; [ $rc -ne 0 ] && echo "node bed: step '"'"'$step'"'"' failed (exit $rc)" >&2' EXIT

step=prerequisites
[ "$(id -u)" = 0 ] || fail "the node bed runs containerd and kubelet, which need root (uid is $(id -u))"
command -v go >/dev/null || fail "'go' is not on PATH (Go >= 1.24 builds CoreDNS)"
node_bin="$root/node_modules/node/bin/node"
[ -x "$node_bin" ] || fail "$node_bin is missing: run 'make build' (npm ci) first"

# Debian packages. Binary -> package, so a package is installed only when what we use from it is missing.
step=apt
declare -A wanted=(
  [/usr/bin/containerd]=containerd [/usr/bin/containerd-shim-runc-v2]=containerd [/usr/sbin/runc]=runc
  [/usr/lib/cni/bridge]=containernetworking-plugins [/usr/lib/cni/host-local]=containernetworking-plugins
  [/usr/lib/cni/portmap]=containernetworking-plugins [/usr/lib/cni/loopback]=containernetworking-plugins
  [/usr/sbin/iptables]=iptables [/usr/sbin/iptables-save]=iptables [/bin/busybox]=busybox-static
  [/usr/bin/gcc]=gcc [/usr/lib/x86_64-linux-gnu/libc.a]=libc6-dev
)
missing=()
for f in "${!wanted[@]}"; do [ -e "$f" ] || missing+=("${wanted[$f]}"); done
if [ ${#missing[@]} -gt 0 ]; then
  command -v apt-get >/dev/null || fail "apt-get is missing; install by hand: ${missing[*]}"
  pkgs=$(printf '%s\n' "${missing[@]}" | sort -u | tr '\n' ' ')
  echo "node bed: installing Debian packages: $pkgs(apt-get update first)" >&2
  apt-get -o DPkg::Lock::Timeout=600 update -qq >&2 || fail "apt-get update"
  # shellcheck disable=SC2086
  DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=600 install -y -qq --no-install-recommends $pkgs >&2 \
    || fail "apt-get install $pkgs"
  for f in "${!wanted[@]}"; do [ -e "$f" ] || fail "$f is still missing after installing ${wanted[$f]}"; done
fi
# Debian's containerd package would start a system containerd where systemd runs; the bed runs its own.

step=stamp
pkg_versions=$(dpkg-query -W -f '${Package} ${Version}\n' containerd runc containernetworking-plugins iptables busybox-static)
stamp_input=$(cat "$here/build.sh" "$here/mkimage.sh" "$here/coredns/go.mod" "$here/coredns/go.sum" "$here/coredns/main.go" \
  "$here/../controlplane/versions.env"; echo "$pkg_versions"; go version; sha256sum "$node_bin")
stamp=$(printf '%s' "$stamp_input" | sha256sum | cut -c1-16)
out="$CACHE_ROOT/node/$stamp"
mkdir -p "$CACHE_ROOT/node"
exec 9>"$CACHE_ROOT/node/.build.lock"
if ! flock -n 9; then
  echo "node bed: another build is running; waiting for it" >&2
  flock 9
fi
if [ -f "$out/.stamp" ] && [ "$(cat "$out/.stamp")" = "$stamp" ]; then
  echo "node bed: CoreDNS, pause and images are up to date in $out" >&2
  echo "$out"
  exit 0
fi
start=$(date +%s)
rm -rf "$out.tmp"; mkdir -p "$out.tmp"

step=coredns
grep -q "github.com/coredns/coredns v${COREDNS_VERSION}\$" "$here/coredns/go.mod" \
  || fail "test/node/coredns/go.mod does not require CoreDNS v${COREDNS_VERSION} (versions.env); run: (cd test/node/coredns && go get github.com/coredns/coredns@v${COREDNS_VERSION} && go mod tidy)"
echo "node bed: building CoreDNS v${COREDNS_VERSION} (kubernetes + template plugins only; a few minutes cold)" >&2
(cd "$here/coredns" && go mod download >&2 && go build -trimpath \
  -ldflags "-s -w -X github.com/coredns/coredns/coremain.GitCommit=v${COREDNS_VERSION}" -o "$out.tmp/coredns" .) >&2 \
  || fail "go build of CoreDNS (see the errors above)"

step=pause
pause_c=$(go mod download -json "k8s.io/kubernetes@v${KUBERNETES_VERSION}" | sed -n 's/^\s*"Dir": "\(.*\)",$/\1/p')/build/pause/linux/pause.c
[ -f "$pause_c" ] || fail "$pause_c not found in the Go module cache"
echo "node bed: building the static pause from $pause_c" >&2
mkdir -p "$out.tmp/rootfs-pause"
gcc -Os -static -DVERSION="v${KUBERNETES_VERSION}-metrics-pusher" -o "$out.tmp/rootfs-pause/pause" "$pause_c" >&2 \
  || fail "gcc -static pause.c"
strip "$out.tmp/rootfs-pause/pause"

step=images
echo "node bed: packing the pause and node-test images" >&2
"$here/mkimage.sh" "$out.tmp/pause.tar" "localhost/metrics-pusher/pause:${KUBERNETES_VERSION}" "$out.tmp/rootfs-pause" \
  '{"Entrypoint":["/pause"],"User":"65535:65535"}'
# node-test: busybox's applets (sh, wget, nslookup, sleep...) and Node with the libraries it links, for pods that
# check DNS and in-cluster API access with real TLS verification.
rfs="$out.tmp/rootfs-node-test"
mkdir -p "$rfs/bin" "$rfs/tmp" "$rfs/etc" "$rfs/lib64" "$rfs/lib/x86_64-linux-gnu"
chmod 1777 "$rfs/tmp"
cp /bin/busybox "$rfs/bin/busybox"
for applet in $(/bin/busybox --list); do [ -e "$rfs/bin/$applet" ] || ln -s busybox "$rfs/bin/$applet"; done
cp "$node_bin" "$rfs/bin/node"
for lib in $(ldd "$node_bin" | grep -o '/lib[^ ]*'); do cp -L "$lib" "$rfs$lib"; done
printf 'root:x:0:0:root:/:/bin/sh\nnobody:x:65534:65534:nobody:/:/bin/sh\n' > "$rfs/etc/passwd"
printf 'root:x:0:\nnobody:x:65534:\n' > "$rfs/etc/group"
"$here/mkimage.sh" "$out.tmp/node-test.tar" "localhost/metrics-pusher/node-test:1" "$rfs" \
  '{"Entrypoint":["/bin/sh"],"Env":["PATH=/bin"]}'
rm -rf "$rfs" "$out.tmp/rootfs-pause"

step=finish
echo "$stamp" > "$out.tmp/.stamp"
rm -rf "$out"; mv "$out.tmp" "$out"
ln -sfn "$out" "$CACHE_ROOT/node/current"
echo "node bed: built in $(( $(date +%s) - start ))s into $out" >&2
echo "$out"
