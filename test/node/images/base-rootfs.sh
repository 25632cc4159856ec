#!/usr/bin/env bash
# Makes the root filesystem of a local node:24-bookworm-slim as a tar: Debian bookworm minbase from Debian's mirrors,
# slimmed as debian:bookworm-slim is (no man pages, docs or locales), plus Node 24 and its npm (base-customize.sh).
#   NODE_BIN=… NPM_TGZ=… base-rootfs.sh <out.tar>
# The merged-usr hook gives bookworm's /bin -> usr/bin layout directly; without it mmdebstrap pulls in usrmerge and
# perl (132 MB instead of 82 MB).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
out=$1
export ENTRYPOINT_SH=$here/docker-entrypoint.sh

# The paths debian:bookworm-slim leaves out; written to /etc/dpkg/dpkg.cfg.d/ so later installs stay slim as well.
dpkgopts=()
for d in doc man groff info lintian linda locale; do
  dpkgopts+=("--dpkgopt=path-exclude=/usr/share/$d/*")
done
dpkgopts+=("--dpkgopt=path-include=/usr/share/doc/*/copyright")

mmdebstrap --variant=minbase --mode=root --format=tar \
  --hook-dir=/usr/share/mmdebstrap/hooks/merged-usr \
  "${dpkgopts[@]}" \
  --customize-hook="\"$here/base-customize.sh\" \"\$1\"" \
  bookworm "$out" \
  "deb http://deb.debian.org/debian bookworm main" \
  "deb http://deb.debian.org/debian bookworm-updates main" \
  "deb http://deb.debian.org/debian-security bookworm-security main"

# mmdebstrap leaves the build host's /etc/resolv.conf and /etc/hostname in the root; the runtime mounts its own over
# them, so the image keeps empty files (mount points) and nothing of this host.
empty=$(mktemp -d)
trap 'rm -rf "$empty"' EXIT
mkdir "$empty/etc"
: >"$empty/etc/resolv.conf"
: >"$empty/etc/hostname"
tar --delete -f "$out" ./etc/resolv.conf ./etc/hostname
tar --append -f "$out" -C "$empty" --owner=0 --group=0 --mode=0644 ./etc/resolv.conf ./etc/hostname
