#!/usr/bin/env bash
# Starts and stops a dockerd of this project's own, from Debian's docker.io, that leaves the host as it found it.
#   dockerd.sh start <name> <data-root>   prints the socket (unix:///run/metrics-pusher-images/<name>/docker.sock)
#   dockerd.sh stop <name>                stops it by its pid and removes what it created (not the data root)
# Why each flag:
#   --iptables=false --ip-forward=false --ip-masq=false --bridge=none: no iptables rule, no FORWARD policy, no
#     docker0. The node bed shares this host's netfilter state, and dockerd's defaults (FORWARD DROP) break pod DNS.
#     Builds use `--network host`; containers run with `--network none`.
#   --exec-root/-H/--pidfile under /run/metrics-pusher-images/<name>, --data-root given by the caller, its own
#     --config-file: nothing read from or written to /var/lib/docker, /run/docker or /etc/docker/daemon.json.
#   --cgroup-parent: build and run containers land in cgroups of this name only, removed on stop.
# dockerd runs in a mount namespace of its own: its overlay mounts never show on the host, tmpfs hides
# /run/containerd (dockerd 20.10 would otherwise adopt a containerd found at /run/containerd/containerd.sock, such
# as the node bed's, and containerd 1.6's shims put their sockets in /run/containerd/s whatever its state dir) and
# /etc/docker (dockerd 20.10 writes /etc/docker/key.json).
set -euo pipefail

run_root=/run/metrics-pusher-images
cgroup_parent=metrics-pusher-images
docker=/usr/bin/docker # Debian's client: a newer one elsewhere on PATH may speak an API this daemon lacks.

die() {
  echo "dockerd: $*" >&2
  exit 1
}

start() {
  local name=$1 data_root=$2
  local dir=$run_root/$name
  local sock=$dir/docker.sock
  [ "$(id -u)" = 0 ] || die "must run as root (dockerd needs it); run as root or with sudo"
  [ -x /usr/sbin/dockerd ] || die "/usr/sbin/dockerd is missing: apt-get install docker.io"
  if [ -f "$dir/docker.pid" ] && kill -0 "$(cat "$dir/docker.pid")" 2>/dev/null; then
    die "a dockerd named $name is already running (pid $(cat "$dir/docker.pid")); stop it with: $0 stop $name"
  fi
  mkdir -p "$data_root" 2>/dev/null || die "cannot create the data root $data_root"
  mkdir -p "$dir/exec"
  echo '{}' >"$dir/daemon.json"
  # Created here only if absent, so that stop removes it only then.
  if [ ! -d /run/containerd ]; then
    mkdir /run/containerd
    touch "$dir/created-run-containerd"
  fi
  # setsid: not in the caller's process group, so a ^C in a test runner reaches the trap that stops it, not dockerd.
  setsid unshare --mount --propagation private /bin/sh -c '
    mount -t tmpfs -o mode=0711 tmpfs /run/containerd &&
    mount -t tmpfs -o mode=0755 tmpfs /etc/docker &&
    exec "$@"' sh \
    /usr/sbin/dockerd \
    --data-root "$data_root" \
    --exec-root "$dir/exec" \
    -H "unix://$sock" \
    --pidfile "$dir/docker.pid" \
    --config-file "$dir/daemon.json" \
    --iptables=false --ip-forward=false --ip-masq=false --bridge=none \
    --storage-driver overlay2 \
    --cgroup-parent "/$cgroup_parent" \
    </dev/null >"$dir/dockerd.log" 2>&1 &
  local launcher=$!
  local i
  for i in $(seq 1 300); do
    if [ -S "$sock" ] && DOCKER_HOST="unix://$sock" "$docker" version >/dev/null 2>&1; then
      echo "unix://$sock"
      return 0
    fi
    if ! kill -0 "$launcher" 2>/dev/null; then
      echo "dockerd: it exited before its API answered; the end of $dir/dockerd.log:" >&2
      tail -20 "$dir/dockerd.log" >&2
      stop "$name" || true
      exit 1
    fi
    sleep 0.1
  done
  echo "dockerd: its API did not answer on $sock within 30s; the end of $dir/dockerd.log:" >&2
  tail -20 "$dir/dockerd.log" >&2
  stop "$name" || true
  exit 1
}

stop() {
  local name=$1
  local dir=$run_root/$name
  [ -d "$dir" ] || return 0
  if [ -f "$dir/docker.pid" ]; then
    local pid
    pid=$(cat "$dir/docker.pid")
    if kill -0 "$pid" 2>/dev/null; then
      kill -TERM "$pid"
      local i
      for i in $(seq 1 200); do
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.1
      done
      if kill -0 "$pid" 2>/dev/null; then
        echo "dockerd: pid $pid did not stop within 20s of SIGTERM; sending SIGKILL" >&2
        kill -KILL "$pid" 2>/dev/null || true
        sleep 0.5
      fi
    fi
  fi
  # The container cgroups are gone once their processes are; the parents this dockerd made are removed here.
  local c
  for c in /sys/fs/cgroup/*/"$cgroup_parent" /sys/fs/cgroup/"$cgroup_parent"; do
    [ -d "$c" ] || continue
    find "$c" -depth -type d -exec rmdir {} + 2>/dev/null || echo "dockerd: could not remove cgroup $c (still in use?)" >&2
  done
  if [ -f "$dir/created-run-containerd" ]; then
    rmdir /run/containerd 2>/dev/null || true
  fi
  rm -rf "$dir"
  rmdir "$run_root" 2>/dev/null || true
}

case "${1:-}" in
  start) [ $# -eq 3 ] || die "usage: $0 start <name> <data-root>"; start "$2" "$3" ;;
  stop) [ $# -eq 2 ] || die "usage: $0 stop <name>"; stop "$2" ;;
  *) die "usage: $0 start <name> <data-root> | stop <name>" ;;
esac
