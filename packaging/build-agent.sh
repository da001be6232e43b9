#!/usr/bin/env bash
# Builds the static ferry-agent (x86_64 musl, `agent` cargo profile:
# opt-level 3, thin LTO, stripped) and checks that it is statically linked.
# Installs musl-tools and the rust musl target first where missing.
# Prints the binary's path and size on stdout.
set -euo pipefail
cd "$(dirname "$0")/.."

target=x86_64-unknown-linux-musl
SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO="sudo"

if ! command -v x86_64-linux-musl-gcc >/dev/null 2>&1; then
  echo "build-agent: installing musl-tools" >&2
  $SUDO apt-get update -qq >&2
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends musl-tools >&2
fi
if ! rustup target list --installed 2>/dev/null | grep -qx "$target"; then
  echo "build-agent: adding rust target $target" >&2
  rustup target add "$target" >&2
fi

# C dependencies (ring, zstd) are compiled with the musl toolchain; rustc
# links the static-pie binary itself (musl-gcc as linker would make it
# dynamic).
export CC_x86_64_unknown_linux_musl=x86_64-linux-musl-gcc
cargo build -p ferry-agent --profile agent --target "$target" >&2

bin="${CARGO_TARGET_DIR:-target}/$target/agent/ferry-agent"
[ -x "$bin" ] || { echo "build-agent: $bin was not produced" >&2; exit 1; }

if command -v file >/dev/null 2>&1; then
  desc=$(file -b "$bin")
  case "$desc" in
    *"statically linked"*|*"static-pie linked"*) ;;
    *) echo "build-agent: $bin is not statically linked: $desc" >&2; exit 1 ;;
  esac
fi
# ldd prints "not a dynamic executable" or "statically linked" for static
# binaries; a "=>" line names a shared library the binary needs.
if ldd_out=$(ldd "$bin" 2>&1) && grep -q "=>" <<<"$ldd_out"; then
  echo "build-agent: $bin needs shared libraries:" >&2
  echo "$ldd_out" >&2
  exit 1
fi

size=$(stat -c %s "$bin")
echo "$bin"
echo "size: $size bytes ($(awk -v s="$size" 'BEGIN { printf "%.2f MiB", s / 1048576 }'))"
