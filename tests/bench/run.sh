#!/usr/bin/env bash
# Distribution benchmark (issue 4): ferry scp vs the baselines on the
# testbed with tc-shaped links. One command, prints a table. Needs root.
#
#   tests/bench/run.sh                       N = 1 4 8, ~400 MB, 400 Mbit/s
#   BENCH_NODES="1 4 8 16" BENCH_MB=400 BENCH_MBIT=400 tests/bench/run.sh
#   BENCH_TOPOLOGY=tree|star|chain (default chain)
#   BENCH_BASELINES=0   skip (d) and (e) (slow at low link rates)
#
# The tree is made of real executables and libraries of this machine
# (/usr/lib, /usr/bin, target/ binaries) plus already-compressed blobs
# (zstd of some of them). Scenarios per N:
#   (a) ferry first copy   (b) ferry re-run, nothing changed
#   (c) ferry after one 50 MB file changed
#   (d) parallel `scp -r` from the bastion (what sealos does)
#   (e) parallel `tar | zstd | ssh 'zstd -d | tar x'`
# plus the physical limit: zstd-compressed size × 8 / link rate, peak
# RSS of the coordinator (getrusage via /usr/bin/time) and agents (VmHWM),
# and for (a) the CPU time spent: all agents together (utime+stime of the
# serve processes), the coordinator, and the whole machine's busy share
# (/proc/stat) — when the machine is saturated during (a), the copy is
# CPU-bound, not link-bound, and (CPU seconds / cores) is its floor.
set -Eeuo pipefail

HERE=$(cd "$(dirname "$0")" && pwd)
REPO=$(cd "$HERE/../.." && pwd)
TESTBED=$REPO/tests/testbed/testbed.sh
FERRY=${FERRY_BIN:-$REPO/target/debug/ferry}
AGENT=${FERRY_AGENT_BIN:-$REPO/target/x86_64-unknown-linux-musl/agent/ferry-agent}
NODES=${BENCH_NODES:-1 4 8}
MB=${BENCH_MB:-400}
MBIT=${BENCH_MBIT:-400}
TOPOLOGY=${BENCH_TOPOLOGY:-chain}
BASELINES=${BENCH_BASELINES:-1}
CORES=$(nproc)
TICKS=$(getconf CLK_TCK)
NAME=fbench
WORK=$(mktemp -d /tmp/ferry-bench.XXXXXX)
DST=/opt/ferry-bench
PW=ferry-root-pw

[ "$(id -u)" = 0 ] || { echo "run as root (the testbed needs namespaces)" >&2; exit 2; }
for b in "$FERRY" "$AGENT"; do [ -x "$b" ] || { echo "missing $b (build first)" >&2; exit 2; }; done

cleanup() { "$TESTBED" down --name "$NAME" >/dev/null 2>&1 || true; rm -rf "$WORK"; }
trap cleanup EXIT

log() { printf '# %s\n' "$*" >&2; }

# --- the tree -------------------------------------------------------------
make_tree() {
  local t=$WORK/tree budget=$((MB * 1024 * 1024)) total=0 n=0 f size
  mkdir -p "$t/bin" "$t/lib" "$t/blobs"
  # One 50 MB file (scenario c changes it).
  find /usr/lib /usr/bin "$REPO/target" -xdev -type f -size +1M -perm -u+x 2>/dev/null |
    head -200 | xargs cat 2>/dev/null | head -c $((50 * 1024 * 1024)) >"$t/bin/big50"
  total=$(stat -c %s "$t/bin/big50")
  while read -r size f; do
    [ "$total" -lt "$budget" ] || break
    # Largest first: skip what would overshoot the budget (the zstd blobs
    # come out smaller than `size`, so this bound holds for them too).
    [ $((total + size)) -le "$budget" ] || continue
    n=$((n + 1))
    if [ $((n % 5)) = 0 ]; then
      zstd -q -3 -c "$f" >"$t/blobs/$n.zst"
      total=$((total + $(stat -c %s "$t/blobs/$n.zst")))
    else
      cp "$f" "$t/lib/$n.$(basename "$f")"
      total=$((total + size))
    fi
  done < <(find /usr/lib /usr/bin /usr/libexec "$REPO/target" -xdev -type f -size +200k \
             -printf '%s %p\n' 2>/dev/null | sort -u -k2 | sort -rn | awk '!seen[$1]++')
  du -sb "$t" | cut -f1
}

log "building a ~${MB} MB tree in $WORK/tree"
TREE_BYTES=$(make_tree)
ZBYTES=$(tar -C "$WORK/tree" -cf - . | zstd -q -3 -T0 | wc -c)
LIMIT=$(awk -v z="$ZBYTES" -v r="$MBIT" 'BEGIN { printf "%.2f", z * 8 / (r * 1e6) }')
log "tree $TREE_BYTES bytes, zstd-3 $ZBYTES bytes, physical limit ${LIMIT}s at ${MBIT} Mbit/s"

now() { date +%s.%N; }
since() { awk -v a="$1" -v b="$(now)" 'BEGIN { printf "%.2f", b - a }'; }

export FERRY_AGENT_BIN=$AGENT
bastion() { ip netns exec "$NAME-bastion" "$@"; }
ferry() { bastion "$FERRY" "$@"; }

# ferry scp; prints "seconds coordinator_rss_kb sender_wire_bytes"
ferry_scp() {
  local t0 out
  t0=$(now)
  out=$(bastion /usr/bin/time -f 'RSS %M CPU %U %S' "$FERRY" --output json scp --topology "$TOPOLOGY" \
        --ips "$IPS" "$WORK/tree" "$DST" 2>"$WORK/time.err") || {
    cat "$WORK/time.err" >&2; echo "ferry scp failed" >&2; return 1; }
  local secs rss wire cpu
  secs=$(since "$t0")
  rss=$(awk '/^RSS/ { print $2 }' "$WORK/time.err")
  cpu=$(awk '/^RSS/ { print $4 + $5 }' "$WORK/time.err")
  wire=$(printf '%s\n' "$out" | tail -1 | sed -n 's/.*"sender_wire_bytes_sent":\([0-9]*\).*/\1/p')
  echo "$secs $rss ${wire:-0} $cpu"
}

# CPU seconds (utime+stime) of every node's `ferry-agent serve` processes.
agents_cpu() {
  local i t=0 k=0 v
  for i in $(seq 1 "$1"); do
    v=$("$TESTBED" exec "$NAME" "$i" -- bash -c \
      'for p in $(pgrep -f "ferry-agent serve"); do cut -d" " -f14,15 /proc/$p/stat; done' 2>/dev/null |
      awk '{ u += $1; s += $2 } END { print u + 0, s + 0 }')
    t=$((t + ${v% *})); k=$((k + ${v#* }))
  done
  awk -v t="$t" -v k="$k" -v hz="$TICKS" 'BEGIN { printf "%.2f %.2f\n", (t + k) / hz, k / hz }'
}

# Busy and total jiffies of the whole machine.
machine_jiffies() { awk '/^cpu / { b = $2 + $3 + $4 + $7 + $8 + $9; print b, b + $5 + $6 }' /proc/stat; }

agent_rss_max() {
  local i m=0 v
  for i in $(seq 1 "$1"); do
    v=$("$TESTBED" exec "$NAME" "$i" -- bash -c \
      'for p in $(pgrep -f "ferry-agent serve"); do grep VmHWM /proc/$p/status; done' 2>/dev/null |
      awk '{ if ($2 > m) m = $2 } END { print m + 0 }')
    [ "$v" -gt "$m" ] && m=$v
  done
  echo "$m"
}

on_all() { # N CMD...: run CMD in every node
  local n=$1 i; shift
  for i in $(seq 1 "$n"); do "$TESTBED" exec "$NAME" "$i" -- "$@" >/dev/null; done
}

ROWS=()
for N in $NODES; do
  log "N=$N: testbed up"
  "$TESTBED" down --name "$NAME" >/dev/null 2>&1 || true
  "$TESTBED" up "$N" --name "$NAME" >/dev/null
  # Fresh known_hosts and cluster state: every testbed has new host keys.
  export HOME=$WORK/home-$N FERRY_HOME=$WORK/home-$N/.ferry
  mkdir -p "$HOME"
  KEY=$(sed -n 's/.*"key_path": "\([^"]*\)".*/\1/p' "/run/ferry-testbed/$NAME/testbed.json")
  IPLIST=()
  for i in $(seq 1 "$N"); do IPLIST+=("10.77.0.$((10 + i))"); done
  IPS=$(IFS=,; echo "${IPLIST[*]}")
  ferry agent install --masters "$IPS" -p "$PW" >"$WORK/install.log" 2>&1 || {
    cat "$WORK/install.log" >&2; exit 1; }
  "$TESTBED" shape "$NAME" bastion "$MBIT"
  for i in $(seq 1 "$N"); do "$TESTBED" shape "$NAME" "$i" "$MBIT"; done

  log "N=$N: (a) first copy"
  read -r AG0 AS0 < <(agents_cpu "$N"); read -r MB0 MT0 < <(machine_jiffies)
  read -r A CRSS_A WIRE_A CCPU_A < <(ferry_scp)
  read -r AG1 AS1 < <(agents_cpu "$N"); read -r MB1 MT1 < <(machine_jiffies)
  ACPU=$(awk -v a="$AG0" -v b="$AG1" 'BEGIN { printf "%.2f", b - a }')
  log "N=$N: (a) agents CPU $ACPU s, of it kernel $(awk -v a="$AS0" -v b="$AS1" 'BEGIN { printf "%.2f", b - a }') s"
  BUSY=$(awk -v b0="$MB0" -v t0="$MT0" -v b1="$MB1" -v t1="$MT1" 'BEGIN { printf "%.0f", 100 * (b1 - b0) / (t1 - t0) }')
  log "N=$N: (b) no-op re-run"
  read -r B CRSS_B _ _ < <(ferry_scp)
  log "N=$N: (c) one 50 MB file changed"
  printf 'x' | cat - "$WORK/tree/bin/big50" | head -c $((50 * 1024 * 1024)) >"$WORK/big50.new"
  mv "$WORK/big50.new" "$WORK/tree/bin/big50"
  CZ=$(zstd -q -3 -c "$WORK/tree/bin/big50" | wc -c)
  read -r C CRSS_C WIRE_C _ < <(ferry_scp)
  ARSS=$(agent_rss_max "$N")
  CRSS=$(printf '%s\n' "$CRSS_A" "$CRSS_B" "$CRSS_C" | sort -n | tail -1)
  on_all "$N" rm -rf "$DST" /var/lib/ferry/cache

  D=0 E=0
  if [ "$BASELINES" = 1 ]; then
  log "N=$N: (d) parallel scp -r"
  SSHO=(-i "$KEY" -o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null -o LogLevel=ERROR)
  t0=$(now)
  for ip in "${IPLIST[@]}"; do bastion scp -q -r "${SSHO[@]}" "$WORK/tree" "root@$ip:$DST-scp" & done
  wait
  D=$(since "$t0")
  on_all "$N" rm -rf "$DST-scp"

  log "N=$N: (e) parallel tar | zstd | ssh"
  t0=$(now)
  for ip in "${IPLIST[@]}"; do
    bastion bash -c 'tar -C "$1" -cf - . | zstd -q -3 -T1 | ssh "${@:3}" "root@$2" "mkdir -p '"$DST"'-tar && zstd -q -d | tar -C '"$DST"'-tar -xf -"' \
      _ "$WORK/tree" "$ip" "${SSHO[@]}" &
  done
  wait
  E=$(since "$t0")
  on_all "$N" rm -rf "$DST-tar"
  fi
  ROWS+=("$N $A $B $C $D $E $WIRE_A $WIRE_C $CRSS $ARSS $ACPU $CCPU_A $BUSY $CZ")
  "$TESTBED" down --name "$NAME" >/dev/null
done

printf '\nferry distribution benchmark: %s MB tree (%s bytes, zstd %s bytes), links %s Mbit/s (bastion and each node), topology %s\n' \
  "$MB" "$TREE_BYTES" "$ZBYTES" "$MBIT" "$TOPOLOGY"
printf 'physical limit (compressed size x 8 / link rate): %ss\n\n' "$LIMIT"
printf 'a.cpuAg/a.cpuCo: CPU seconds of all agents / of the coordinator during (a); busy: share of the\n'
printf 'machine'"'"'s %s cores busy during (a); a.floor = (a.cpuAg + a.cpuCo) / cores (CPU-bound floor);\n' "$CORES"
printf 'c.wire/z: wire bytes of (c) / zstd-3 size of the changed 50 MB file\n\n'
printf '%3s %9s %9s %9s %9s %9s %8s %8s %8s %10s %10s %9s %9s %8s %8s %5s %8s %8s\n' \
  N 'a.first' 'b.noop' 'c.50MB' 'd.scp' 'e.tarzst' 'a/limit' 'd/a' 'e/a' 'a.wireMB' 'c.wireMB' 'coordRSS' 'agentRSS' \
  'a.cpuAg' 'a.cpuCo' 'busy' 'a.floor' 'c.wire/z'
for row in "${ROWS[@]}"; do
  read -r N A B C D E WA WC CR AR ACP CCP BZ CZ <<<"$row"
  awk -v n="$N" -v a="$A" -v b="$B" -v c="$C" -v d="$D" -v e="$E" -v l="$LIMIT" \
      -v wa="$WA" -v wc="$WC" -v cr="$CR" -v ar="$AR" -v acp="$ACP" -v ccp="$CCP" -v bz="$BZ" -v cz="$CZ" \
      -v cores="$CORES" 'BEGIN {
    printf "%3d %8.2fs %8.2fs %8.2fs %8.2fs %8.2fs %8.2f %8.2f %8.2f %10.1f %10.1f %7.0fMB %7.0fMB %7.2fs %7.2fs %4d%% %7.2fs %8.2f\n",
      n, a, b, c, d, e, a / l, (a > 0 ? d / a : 0), (a > 0 ? e / a : 0), wa / 1048576, wc / 1048576,
      cr / 1024, ar / 1024, acp, ccp, bz, (acp + ccp) / cores, wc / cz }'
done
