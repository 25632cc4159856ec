#!/bin/sh
# The entrypoint of the official node images, for a local node:24-bookworm-slim that behaves the same: an argument
# list that starts with an option, or with something that is not a command, is run by node.
set -e
if [ "${1#-}" != "$1" ] || [ -z "$(command -v "$1")" ] || { [ -f "$1" ] && ! [ -x "$1" ]; }; then
  set -- node "$@"
fi
exec "$@"
