#!/usr/bin/env bash
# mmdebstrap customize hook of base-rootfs.sh: adds to the Debian root at $1 what the official node image adds to
# debian:bookworm-slim. Inputs from the environment: NODE_BIN (the Node 24 binary), NPM_TGZ (`npm pack` of the npm
# that Node version bundles), ENTRYPOINT_SH.
set -euo pipefail
root=$1

install -D -m 0755 "$NODE_BIN" "$root/usr/local/bin/node"
ln -s node "$root/usr/local/bin/nodejs"

# The `node` npm package carries no npm; the official image has the one Node's release bundles, laid out the same.
npm_dir=$root/usr/local/lib/node_modules/npm
mkdir -p "$npm_dir"
tar -xzf "$NPM_TGZ" -C "$npm_dir" --strip-components=1 --no-same-owner --no-same-permissions
chmod -R u=rwX,go=rX "$npm_dir"
chmod 0755 "$npm_dir"/bin/npm-cli.js "$npm_dir"/bin/npx-cli.js "$npm_dir"/bin/npm "$npm_dir"/bin/npx
ln -s ../lib/node_modules/npm/bin/npm-cli.js "$root/usr/local/bin/npm"
ln -s ../lib/node_modules/npm/bin/npx-cli.js "$root/usr/local/bin/npx"

install -m 0755 "$ENTRYPOINT_SH" "$root/usr/local/bin/docker-entrypoint.sh"

chroot "$root" groupadd --gid 1000 node
chroot "$root" useradd --uid 1000 --gid node --shell /bin/bash --create-home node

# Inside the root, so that a library the binary needs and minbase lacks fails here, not in the first docker build.
echo "base: node $(chroot "$root" /usr/local/bin/node --version), npm $(chroot "$root" /usr/local/bin/node /usr/local/bin/npm --version) in the root" >&2
