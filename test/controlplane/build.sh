#!/usr/bin/env bash
# Builds etcd, kube-apiserver, kube-controller-manager, kubectl and the node's kubelet, kube-scheduler and kube-proxy
# (static, version-stamped, one module and one set of flags) into the cache directory
# outside the clone. A no-op when the stamp of the inputs (go.mod, go.sum, versions, flags, Go version) matches.
# Prints the binary directory on its last line of stdout; progress goes to stderr.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
. "$here/versions.env"
. "$here/goenv.sh"
cd "$here"

if ! command -v go >/dev/null 2>&1; then
  echo "control plane: 'go' is not on PATH; Go >= 1.24 is needed to build kube-apiserver and etcd" >&2
  exit 1
fi

minor=${KUBERNETES_VERSION#1.}; minor=${minor%%.*}
pkgs=(go.etcd.io/etcd/server/v3 k8s.io/kubernetes/cmd/kube-apiserver k8s.io/kubernetes/cmd/kube-controller-manager k8s.io/kubernetes/cmd/kubectl
  k8s.io/kubernetes/cmd/kubelet k8s.io/kubernetes/cmd/kube-scheduler k8s.io/kubernetes/cmd/kube-proxy)
ldflags="-s -w -X k8s.io/component-base/version.gitVersion=v${KUBERNETES_VERSION} -X k8s.io/component-base/version.gitMajor=1 -X k8s.io/component-base/version.gitMinor=${minor} -X k8s.io/component-base/version.gitTreeState=clean -X k8s.io/client-go/pkg/version.gitVersion=v${KUBERNETES_VERSION} -X k8s.io/client-go/pkg/version.gitMajor=1 -X k8s.io/client-go/pkg/version.gitMinor=${minor}"
flags=(-trimpath -ldflags "$ldflags")

stamp_input=$(cat go.mod go.sum versions.env; echo "${pkgs[*]}"; echo "$ldflags"; go version)
stamp=$(printf '%s' "$stamp_input" | sha256sum | cut -c1-16)
bin="$CACHE_ROOT/controlplane/v${KUBERNETES_VERSION}-${stamp}"

# Two test runs starting at once must not build into the same directory: the second waits, then finds it current.
mkdir -p "$CACHE_ROOT/controlplane"
exec 9>"$CACHE_ROOT/controlplane/.build.lock"
if ! flock -n 9; then
  echo "control plane: another build is running; waiting for it" >&2
  flock 9
fi

if [ -f "$bin/.stamp" ] && [ "$(cat "$bin/.stamp")" = "$stamp" ]; then
  echo "control plane: binaries for Kubernetes v${KUBERNETES_VERSION} are up to date in $bin" >&2
  echo "$bin"
  exit 0
fi

start=$(date +%s)
echo "control plane: building etcd v${ETCD_VERSION}, kube-apiserver, kube-controller-manager, kubectl, kubelet, kube-scheduler and kube-proxy v${KUBERNETES_VERSION}" >&2
echo "control plane: a cold build took 5 minutes on a 2-core machine (more on a slower one); later runs reuse $GOCACHE" >&2
go mod download >&2
total=$(go list -deps "${pkgs[@]}" | wc -l)
mkdir -p "$bin.tmp"
# `go build -v` names each package as it is compiled; count them against the dependency total for a progress line.
# set -e would end the script on a failed pipeline before the reason below is printed.
set +e
go build -v "${flags[@]}" -o "$bin.tmp/" "${pkgs[@]}" 2>&1 | awk -v total="$total" -v start="$start" '
  /^(#|go: |[a-zA-Z0-9_.\/-]+\.go:)/ { print > "/dev/stderr"; next }
  { n++; if (n % 100 == 0) {
      el = systime() - start; pct = int(100 * n / total); if (pct > 99) pct = 99
      eta = (n > 0 && pct > 5) ? int(el * (total - n) / n) : -1
      printf "control plane: %d/%d packages compiled (%d%%), %ds elapsed%s\n", n, total, pct, el, (eta >= 0 ? sprintf(", about %ds left", eta) : "") > "/dev/stderr"
  } }
  END { printf "control plane: %d packages compiled\n", n > "/dev/stderr" }'
rc=${PIPESTATUS[0]}
set -e
if [ "$rc" -ne 0 ]; then
  echo "control plane: go build failed (exit $rc); see the errors above" >&2
  exit "$rc"
fi
# `go build -o dir/` names a main package whose path ends in a major-version element after the element before it
# (go.etcd.io/etcd/server/v3 -> server); older Go versions used the last element (v3).
for name in server v3; do
  if [ -x "$bin.tmp/$name" ]; then mv "$bin.tmp/$name" "$bin.tmp/etcd"; fi
done
for b in etcd kube-apiserver kube-controller-manager kubectl kubelet kube-scheduler kube-proxy; do
  [ -x "$bin.tmp/$b" ] || { echo "control plane: $b was not built" >&2; exit 1; }
done
echo "$stamp" > "$bin.tmp/.stamp"
rm -rf "$bin"; mv "$bin.tmp" "$bin"
ln -sfn "$bin" "$CACHE_ROOT/controlplane/current"
echo "control plane: built in $(( $(date +%s) - start ))s: $("$bin/kube-apiserver" --version), etcd $("$bin/etcd" --version | head -1)" >&2
echo "$bin"
