#!/usr/bin/env bash
# Runs every cargo-fuzz target (fuzz/) for SECONDS each, one after the other
# (2 cores: running them side by side only slows each), and prints per
# target the executions, libFuzzer's coverage (cov: edges, ft: features),
# the corpus size and any crash/timeout/OOM input it found.
#   packaging/fuzz/run.sh [SECONDS] [TARGET...]   (default 60 s, all targets)
#   packaging/fuzz/run.sh --replay [TARGET...]    seeds and regressions only
# Inputs: fuzz/seeds/T (committed seeds), fuzz/regressions/T (inputs that
# once crashed, each fixed), fuzz/corpus/T (the growing corpus, not
# committed). Crashes land in fuzz/artifacts/T/. Needs the pinned nightly
# toolchain FERRY_FUZZ_NIGHTLY (below; installed if missing) and cargo-fuzz
# (packaging/ci/tool.sh installs it).
# FERRY_FUZZ_OPTIONAL=1 (CI): a nightly that cannot be had skips, saying so.
# FERRY_FUZZ_TARGET=<dir>: the build directory (default fuzz/target); CI
# keeps it under ~/.cache so a later run on the same machine rebuilds only
# what changed (the instrumented release build of ~430 crates is the cost).
set -euo pipefail
cd "$(dirname "$0")/../.."

replay=0
if [ "${1:-}" = "--replay" ]; then
  replay=1
  shift
  secs=0
else
  secs=${1:-60}
  [ $# -gt 0 ] && shift
fi

# The toolchain is pinned: a floating `nightly` would change the
# instrumented build (and what it finds) under us. FERRY_FUZZ_NIGHTLY
# overrides the pin, to try a newer one before moving it.
FERRY_FUZZ_NIGHTLY=${FERRY_FUZZ_NIGHTLY:-nightly-2026-05-20}
toolchain=$FERRY_FUZZ_NIGHTLY
have() { RUSTUP_AUTO_INSTALL=0 rustup run "$1" rustc --version >/dev/null 2>&1; }
# Whether the floating `nightly` is the pinned build (rustup's channel
# manifest in its sysroot carries its date), so it is not fetched twice.
floating_is_pinned() {
  local sysroot
  sysroot=$(RUSTUP_AUTO_INSTALL=0 rustup run nightly rustc --print sysroot 2>/dev/null) || return 1
  grep -qx "date = \"${FERRY_FUZZ_NIGHTLY#nightly-}\"" \
    "$sysroot/lib/rustlib/multirust-channel-manifest.toml" 2>/dev/null
}
if ! have "$toolchain"; then
  if floating_is_pinned; then
    toolchain=nightly
  else
    echo "fuzz: installing $FERRY_FUZZ_NIGHTLY (cargo-fuzz needs -Z flags)" >&2
    if ! rustup toolchain install "$FERRY_FUZZ_NIGHTLY" --profile minimal >&2; then
      echo "fuzz: no $FERRY_FUZZ_NIGHTLY toolchain and it cannot be installed; the fuzz targets need it" >&2
      if [ "${FERRY_FUZZ_OPTIONAL:-0}" = 1 ]; then
        echo "fuzz: SKIPPED: fuzz targets not built (no $FERRY_FUZZ_NIGHTLY toolchain)"
        exit 0
      fi
      exit 1
    fi
  fi
fi
echo "fuzz: toolchain $toolchain ($(rustup run "$toolchain" rustc --version))" >&2
fuzz_bin=$(command -v cargo-fuzz || bash packaging/ci/tool.sh cargo-fuzz 0.13.2)
export PATH="$(dirname "$fuzz_bin"):$PATH"

if [ $# -gt 0 ]; then
  targets=("$@")
else
  mapfile -t targets < <(cargo +"$toolchain" fuzz list)
fi

tdir=()
[ -n "${FERRY_FUZZ_TARGET:-}" ] && tdir=(--target-dir "$FERRY_FUZZ_TARGET")
start=$SECONDS
cargo +"$toolchain" fuzz build "${tdir[@]}" >&2
echo "fuzz: built ${#targets[@]} targets in $((SECONDS - start)) s" >&2

# Archives need room; text parsers are exercised best with short inputs.
max_len() {
  case $1 in
    layer_unpack | archive_load) echo 32768 ;;
    transfer_push) echo 16384 ;;
    *) echo 4096 ;;
  esac
}

mkdir -p fuzz/logs
failed=0
printf '%-14s %12s %8s %8s %6s  %s\n' target execs cov ft corp found
for t in "${targets[@]}"; do
  dirs=()
  [ "$replay" = 1 ] || { mkdir -p "fuzz/corpus/$t"; dirs+=("fuzz/corpus/$t"); }
  for d in "fuzz/seeds/$t" "fuzz/regressions/$t"; do
    [ -d "$d" ] && dirs+=("$d")
  done
  mkdir -p "fuzz/artifacts/$t"
  log=fuzz/logs/$t.log
  if [ "$replay" = 1 ]; then
    args=(-runs=0)
  else
    args=(-max_total_time="$secs" -max_len="$(max_len "$t")")
  fi
  rc=0
  # -detect_leaks=0: LeakSanitizer reported glibc's one-time registration of
  # a thread-local destructor (__cxa_thread_atexit_impl, 32 bytes) as a leak
  # in the template target, and stopped it; a leak is no memory-safety bug
  # in safe Rust, while crashes, timeouts and OOMs still stop a target.
  cargo +"$toolchain" fuzz run "${tdir[@]}" "$t" "${dirs[@]}" -- "${args[@]}" -timeout=10 -rss_limit_mb=2048 \
    -detect_leaks=0 \
    -print_final_stats=1 >"$log" 2>&1 || rc=$?
  execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -1)
  stats=$(grep -E '^#[0-9]+.*cov: ' "$log" | tail -1 || true)
  cov=$(sed -n 's/.* cov: \([0-9]*\).*/\1/p' <<<"$stats")
  ft=$(sed -n 's/.* ft: \([0-9]*\).*/\1/p' <<<"$stats")
  corp=$(sed -n 's/.* corp: \([0-9]*\).*/\1/p' <<<"$stats")
  found=$(sed -n 's/.*Test unit written to \([^ ]*\).*/\1/p' "$log" | sort -u | tr '\n' ' ')
  if [ "$rc" -ne 0 ]; then
    failed=1
    found="${found:-exit $rc, see $log}"
  fi
  printf '%-14s %12s %8s %8s %6s  %s\n' "$t" "${execs:-?}" "${cov:-?}" "${ft:-?}" "${corp:-?}" "${found:-none}"
done
exit "$failed"
