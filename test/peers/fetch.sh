#!/usr/bin/env bash
# Unpacks Prometheus 2.42 and VictoriaMetrics 1.79 (with vmagent) from Debian's packages into the cache directory
# outside the clone, without installing them as system services. Prints the directory holding usr/bin on stdout.
set -euo pipefail
CACHE_ROOT=${METRICS_PUSHER_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/metrics-pusher}
dir="$CACHE_ROOT/peers"
want=(prometheus victoria-metrics)
if [ -x "$dir/root/usr/bin/prometheus" ] && [ -x "$dir/root/usr/bin/victoria-metrics" ] && [ -x "$dir/root/usr/bin/vmagent" ]; then
  echo "$dir/root"; exit 0
fi
command -v apt-get >/dev/null || { echo "peers: apt-get is needed to download Prometheus and VictoriaMetrics from Debian's packages" >&2; exit 1; }
mkdir -p "$dir/debs" "$dir/root.tmp"
cd "$dir/debs"
echo "peers: downloading ${want[*]} from Debian's packages" >&2
if ! apt-get download "${want[@]}" >&2 2>/dev/null; then
  echo "peers: package lists missing or stale; running apt-get update" >&2
  apt-get update -qq >&2
  apt-get download "${want[@]}" >&2
fi
for f in "$dir"/debs/*.deb; do dpkg -x "$f" "$dir/root.tmp"; done
rm -rf "$dir/root"; mv "$dir/root.tmp" "$dir/root"
echo "peers: $("$dir/root/usr/bin/prometheus" --version 2>&1 | head -1); victoria-metrics $("$dir/root/usr/bin/victoria-metrics" -version 2>&1 | head -1)" >&2
echo "$dir/root"
