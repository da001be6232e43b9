#!/usr/bin/env bash
# Installs one cargo tool from crates.io at a pinned version into a directory
# keyed by that version, once per machine, and prints the binary's path:
#   packaging/ci/tool.sh cargo-deny 0.20.2 [cargo install args...]
# A second call (a later CI run on the same machine) finds it and builds
# nothing. The build uses the crate's Cargo.lock (--locked) and its own target
# dir, so it never touches the project's target/. These tools run for
# seconds: their release profiles' fat LTO and single codegen unit (about
# half of cargo-deny's build time on 2 cores) buy nothing here, so the
# build uses opt-level 1, no LTO, parallel codegen.
set -euo pipefail
name=$1 version=$2
shift 2
root=${FERRY_TOOLS:-${XDG_CACHE_HOME:-$HOME/.cache}/ferry-tools}/$name-$version
bin=$root/bin/$name
if ! [ -x "$bin" ]; then
  start=$SECONDS
  echo "tool: installing $name $version into $root" >&2
  if ! CARGO_PROFILE_RELEASE_LTO=false CARGO_PROFILE_RELEASE_CODEGEN_UNITS=16 \
      CARGO_PROFILE_RELEASE_OPT_LEVEL=1 CARGO_PROFILE_RELEASE_STRIP=true cargo install --quiet --locked --version "=$version" --root "$root.partial" \
      --target-dir "${root}.target" "$@" "$name" >&2; then
    echo "tool: cargo install $name $version failed (crates.io unreachable or build error); see above" >&2
    exit 1
  fi
  rm -rf "$root" "${root}.target"
  mv "$root.partial" "$root"
  echo "tool: $name $version installed in $((SECONDS - start)) s" >&2
fi
echo "$bin"
