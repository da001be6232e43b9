# Sourced by the real tier's build scripts (build-binaries.sh, build-helm.sh,
# build-image.sh): where the cache is and how Go builds into it.

# The cache root: FERRY_REAL_CACHE, else /var/cache/ferry/real for root,
# ~/.cache/ferry/real for anyone else. Each build has its own
# <name>-<version>/ below it, complete once stamped (.complete).
REAL_CACHE="${FERRY_REAL_CACHE:-$([ "$(id -u)" = 0 ] && echo /var/cache/ferry/real || echo "${XDG_CACHE_HOME:-$HOME/.cache}/ferry/real")}"

# exit_if_stamped OUT WHAT: a warm run: OUT is complete, nothing to build.
exit_if_stamped() {
  if [[ -f "$1/.complete" ]]; then
    echo "$2: cached in $1/bin"
    exit 0
  fi
}

# go_env GOCACHE: static binaries, the machine's Go only, modules resolved as
# the wrapper module says; GOMODCACHE stays the Go default (kept), the build
# cache is the build's own.
go_env() {
  export CGO_ENABLED=0 GOFLAGS="-mod=mod" GOTOOLCHAIN=local GOCACHE="$1"
}

# go_build_progress TAG EVERY LOG ARGS...: `go build -v ARGS...`, a progress
# line every EVERY packages compiled, the whole output in LOG, its tail on
# a failure.
go_build_progress() {
  local - tag=$1 every=$2 log=$3
  set -o pipefail
  shift 3
  if ! go build -v "$@" 2>&1 | tee "$log" |
    awk -v tag="$tag" -v every="$every" -v t0="$(date +%s)" '{ n++; if (n % every == 0) { printf "[%s %s] %d packages compiled (%d s)\n", tag, strftime("%T"), n, systime() - t0; fflush() } }'
  then
    echo "${0##*/}: go build failed; last lines of $log:" >&2
    tail -n 30 "$log" >&2
    return 1
  fi
}

# stamp OUT: marks OUT complete and removes the private build cache (a
# failed build keeps it for the retry).
stamp() {
  touch "$1/.complete"
  chmod -R u+w "$GOCACHE" 2>/dev/null || true
  rm -rf "$GOCACHE"
}
