#!/usr/bin/env bash
# mkimage.sh OUT.tar REF ROOTFS_DIR CONFIG_JSON
# Packs ROOTFS_DIR as a one-layer image in the `docker save` archive format, which `ctr images import` reads, without
# Docker and without a registry. CONFIG_JSON is the image config's "config" object (Entrypoint, Env, User...).
# The layer is reproducible (sorted, owner 0, fixed mtime), so an unchanged rootfs gives the same image id.
set -euo pipefail
out=$1 ref=$2 rootfs=$3 config=$4
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
tar --sort=name --owner=0 --group=0 --numeric-owner --mtime=@0 -C "$rootfs" -cf "$work/layer.tar" .
diff_id=$(sha256sum "$work/layer.tar" | cut -d' ' -f1)
mkdir "$work/$diff_id"
mv "$work/layer.tar" "$work/$diff_id/layer.tar"
printf '{"architecture":"amd64","os":"linux","created":"1970-01-01T00:00:00Z","config":%s,"rootfs":{"type":"layers","diff_ids":["sha256:%s"]}}' \
  "$config" "$diff_id" > "$work/config.json"
config_id=$(sha256sum "$work/config.json" | cut -d' ' -f1)
mv "$work/config.json" "$work/$config_id.json"
printf '[{"Config":"%s.json","RepoTags":["%s"],"Layers":["%s/layer.tar"]}]' "$config_id" "$ref" "$diff_id" > "$work/manifest.json"
tar --sort=name --owner=0 --group=0 --numeric-owner --mtime=@0 -C "$work" -cf "$out.tmp" manifest.json "$config_id.json" "$diff_id"
mv "$out.tmp" "$out"
