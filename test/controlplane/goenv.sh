# Sourced by the control-plane scripts: Go's caches live outside the clone so a fresh clone (CI) reuses them.
CACHE_ROOT=${METRICS_PUSHER_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/metrics-pusher}
export GOMODCACHE="$CACHE_ROOT/go/mod"
export GOCACHE="$CACHE_ROOT/go/build"
export GOFLAGS=-mod=mod
export GOTOOLCHAIN=local
export CGO_ENABLED=0
