#!/usr/bin/env bash
# ferry testbed: many realistic "nodes" on one Linux machine (needs root).
#
#   testbed.sh up N [--name NAME] [--owner PID] [--kube]
#                                                  create NAME (default ftb) with N nodes;
#                                                  --kube: nodes that can host kubelet+containerd
#   testbed.sh down [--name NAME]                  tear NAME down (idempotent)
#   testbed.sh exec NAME NODE [-- CMD...]          run CMD (default: login shell) in a node
#   testbed.sh bastion NAME [-- CMD...]            run CMD in the bastion netns (host files)
#   testbed.sh ssh NAME NODE [--user U] [-- CMD...]  ssh from the bastion with the testbed key
#   testbed.sh kill NAME NODE                      kill every process of a node (node loss)
#   testbed.sh start NAME NODE                     boot a killed node again (files survive)
#   testbed.sh rekey NAME NODE                     new sshd host keys + restart sshd
#   testbed.sh link NAME NODE up|down              plug/unplug the node's cable (partition)
#   testbed.sh shape NAME NODE|bastion RATE_MBIT   tc rate limit both directions (0 = off)
#   testbed.sh list                                testbeds on this machine
#   testbed.sh info NAME                           print NAME's testbed.json
#   testbed.sh gc                                  down testbeds whose --owner process is gone
#
# NODE is node1, n1 or 1. Layout: netns NAME-hub holds bridge br0 (10.77.0.1);
# netns NAME-bastion (10.77.0.2) shares the host's files; node K (netns
# NAME-nK, 10.77.0.(10+K)) has its own mount/UTS/IPC/PID namespaces, hostname
# nodeK, an overlay root (lower = host /, upper on a tmpfs under
# /run/ferry-testbed/NAME/fs) and a real sshd on :22. Users in every node:
# root/ferry-root-pw, alice/ferry-alice-pw (sudo NOPASSWD), bob/ferry-bob-pw
# (sudo with password), carol/ferry-carol-pw (no sudo); the testbed's keys
# id_ed25519 and id_ed25519_enc (passphrase ferry-key-pw) are authorized for
# all of them. Machine-readable description: /run/ferry-testbed/NAME/testbed.json.
# --kube nodes (as kind's node containers) also get their own cgroup subtree
# (ferry-testbed/NAME-nodeK under the caller's cgroup in every v1 hierarchy)
# seen through a private cgroup namespace and cgroupfs mounts, /dev/kmsg, a
# tmpfs /var/lib/containerd (overlayfs does not stack on the overlay root)
# and a recursively shared root mount (kubelet's mount propagation).
set -Eeuo pipefail

TB_ROOT=${FERRY_TESTBED_ROOT:-/run/ferry-testbed}
NET=${FERRY_TESTBED_NET:-10.77.0} # first three octets of the /24
ROOT_PW=ferry-root-pw ALICE_PW=ferry-alice-pw BOB_PW=ferry-bob-pw CAROL_PW=ferry-carol-pw
KEY_PW=ferry-key-pw
SSHD_DIR=/etc/ssh/ferry-testbed # inside nodes
NODE_PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
SELF=$(readlink -f "${BASH_SOURCE[0]}")
export PATH=$NODE_PATH:$PATH

die() { echo "testbed: $*" >&2; exit 1; }
log() { [ -n "${QUIET:-}" ] || echo "testbed: $*" >&2; }
now_ms() { local t=${EPOCHREALTIME/./}; echo $((t / 1000)); }
valid_name() { [[ $1 =~ ^[a-z0-9][a-z0-9-]{0,30}$ ]] || die "bad testbed name '$1' ([a-z0-9-], max 31)"; }
sdir() { echo "$TB_ROOT/$1"; }
ndir() { echo "$TB_ROOT/$1/fs/node$2"; }
node_ip() { echo "$NET.$((10 + $1))"; }
node_count() { local f; f="$(sdir "$1")/nodes"; [ -f "$f" ] || die "no testbed '$1'"; cat "$f"; }

# node_index NAME NODE -> K (1-based)
node_index() {
  local n=${2#node}; n=${n#n}
  [[ $n =~ ^[0-9]+$ ]] && ((n >= 1 && n <= $(node_count "$1"))) || die "no node '$2' in testbed '$1'"
  echo $((10#$n))
}

# pid_start PID -> process start time (field 22 of /proc/PID/stat), empty if gone
pid_start() {
  local stat rest
  stat=$(cat "/proc/$1/stat" 2>/dev/null) || return 0
  rest=${stat##*) }
  set -- $rest
  echo "${20}"
}

# node_pid NAME K -> host pid of the node's PID 1, empty if not running
node_pid() {
  local f pid start
  f="$(ndir "$1" "$2")/pid"
  [ -f "$f" ] || return 0
  read -r pid start <"$f" || return 0
  if [ -n "$start" ] && [ "$(pid_start "$pid")" = "$start" ]; then echo "$pid"; fi
}

# poll_until DEADLINE_MS CMD... : run CMD until it succeeds or the deadline passes
poll_until() {
  local deadline=$(($(now_ms) + $1)); shift
  until "$@"; do
    (($(now_ms) < deadline)) || return 1
    sleep 0.02
  done
}
pid_state() { local stat; stat=$(cat "/proc/$1/stat" 2>/dev/null) || return 0; stat=${stat##*) }; echo "${stat%% *}"; }
all_dead() { local p s; for p in "$@"; do s=$(pid_state "$p"); [ -z "$s" ] || [ "$s" = Z ] || return 1; done; }

# kill_netns_procs NETNS... : SIGKILL every process in these netns and wait for them
kill_netns_procs() {
  local ns pids=()
  for ns in "$@"; do
    [ -e "/run/netns/$ns" ] || continue
    mapfile -t -O "${#pids[@]}" pids < <(ip netns pids "$ns" 2>/dev/null)
  done
  [ ${#pids[@]} -gt 0 ] || return 0
  kill -9 "${pids[@]}" 2>/dev/null || true
  poll_until 10000 all_dead "${pids[@]}" || log "warning: processes ${pids[*]} survived SIGKILL"
}

our_netns() { # NAME -> the netns names of this testbed that exist
  local f
  for f in /run/netns/"$1"-*; do
    [ -e "$f" ] || continue
    f=${f##*/}
    [[ ${f#"$1"-} =~ ^(hub|bastion|n[0-9]+)$ ]] && echo "$f"
  done
  return 0
}

cmd_down() {
  local name=$1 s nss f
  valid_name "$name"
  s=$(sdir "$name")
  mapfile -t nss < <(our_netns "$name")
  for f in "$s"/fs/node*/pid; do # (the pid file also holds the start time: no stale kills)
    [ -f "$f" ] || continue
    f=${f%/pid}; f=$(node_pid "$name" "${f##*/node}")
    if [ -n "$f" ]; then kill -9 "$f" 2>/dev/null || true; fi
  done
  kill_netns_procs "${nss[@]}"
  for f in "${nss[@]}"; do ip netns del "$f" 2>/dev/null || true; done
  cg_remove "$name"
  if [ -d "$s/fs" ] && mountpoint -q "$s/fs"; then
    umount "$s/fs" 2>/dev/null || poll_until 5000 umount "$s/fs" 2>/dev/null || umount -l "$s/fs"
  fi
  if [ -d "$s" ]; then rm -rf --one-file-system "$s"; fi
  log "down $name"
}

# ---- template: files every node's overlay upper starts with -----------------

hash_pw() { perl -e 'print crypt($ARGV[0], "\$6\$" . $ARGV[1] . "\$")' "$1" "$(od -An -N8 -tx1 /dev/urandom | tr -d ' \n')"; }
# opaque DIR: hide the lower layer's entries of DIR (overlay xattr; best effort)
opaque() {
  perl -e 'my %nr = (x86_64 => 188, aarch64 => 5, riscv64 => 5); my $n = $nr{$ARGV[1]} // exit 1;
    my ($p, $k, $v) = ($ARGV[0], "trusted.overlay.opaque", "y"); exit(syscall($n, $p, $k, $v, 1, 0) == 0 ? 0 : 1)' \
    "$1" "$(uname -m)" || log "note: could not make $1 opaque; host files stay visible there in nodes"
}
ref_dir() { mkdir -p "$1/$2"; chmod --reference="/$2" "$1/$2"; chown --reference="/$2" "$1/$2"; }
free_id() { # FILE START -> first id >= START not used in field 3 of FILE
  local id=$2
  while cut -d: -f3 "$1" | grep -qx "$id"; do id=$((id + 1)); done
  echo "$id"
}

make_template() {
  local s=$1 t=$1/fs/template u id gid day pw hash
  for u in etc etc/ssh etc/sudoers.d root home; do ref_dir "$t" "$u"; done
  opaque "$t/root"; opaque "$t/home" # nodes get a fresh /root and /home, not the host's
  cp -a /etc/skel/. "$t/root/" && chmod --reference=/root "$t/root"
  mkdir -p -m 0755 "$t$SSHD_DIR"
  for u in passwd group shadow gshadow; do
    cp -a "/etc/$u" "$t/etc/$u"
    sed -i -E '/^(alice|bob|carol):/d' "$t/etc/$u"
  done
  day=$(($(date +%s) / 86400))
  hash=$(hash_pw "$ROOT_PW")
  sed -i -E "s|^root:[^:]*:[^:]*:|root:$hash:$day:|" "$t/etc/shadow"
  install -d -m 0700 "$t/root/.ssh"
  cat "$s/id_ed25519.pub" "$s/id_ed25519_enc.pub" >"$t/root/.ssh/authorized_keys"
  chmod 0600 "$t/root/.ssh/authorized_keys"
  id=2001
  for u in alice bob carol; do
    case $u in alice) pw=$ALICE_PW ;; bob) pw=$BOB_PW ;; carol) pw=$CAROL_PW ;; esac
    id=$(free_id "$t/etc/passwd" "$id"); gid=$(free_id "$t/etc/group" "$id")
    echo "$u:x:$id:$gid::/home/$u:/bin/bash" >>"$t/etc/passwd"
    echo "$u:x:$gid:" >>"$t/etc/group"
    echo "$u:$(hash_pw "$pw"):$day:0:99999:7:::" >>"$t/etc/shadow"
    echo "$u:!::" >>"$t/etc/gshadow"
    mkdir -p -m 0700 "$t/home/$u"
    cp -a /etc/skel/. "$t/home/$u/" 2>/dev/null || true
    chmod 0700 "$t/home/$u"
    install -d -m 0700 "$t/home/$u/.ssh"
    cp "$t/root/.ssh/authorized_keys" "$t/home/$u/.ssh/authorized_keys"
    chmod 0600 "$t/home/$u/.ssh/authorized_keys"
    chown -R "$id:$gid" "$t/home/$u"
    id=$((id + 1))
  done
  printf '%s\n' 'Defaults lecture=never' 'alice ALL=(ALL:ALL) NOPASSWD: ALL' 'bob ALL=(ALL:ALL) ALL' \
    >"$t/etc/sudoers.d/ferry-testbed"
  chmod 0440 "$t/etc/sudoers.d/ferry-testbed"
  cat >"$t$SSHD_DIR/sshd_config" <<EOF
# sshd of a ferry testbed node (generated by testbed.sh)
Port 22
ListenAddress 0.0.0.0
HostKey $SSHD_DIR/ssh_host_ed25519_key
HostKey $SSHD_DIR/ssh_host_ecdsa_key
PidFile /run/sshd.pid
PermitRootLogin yes
PasswordAuthentication yes
PubkeyAuthentication yes
KbdInteractiveAuthentication no
UsePAM no
AuthorizedKeysFile .ssh/authorized_keys
UseDNS no
PrintMotd no
LogLevel VERBOSE
MaxStartups 200:30:400
MaxSessions 100
AcceptEnv LANG LC_*
Subsystem sftp /usr/lib/openssh/sftp-server
EOF
}

# ---- kube nodes: cgroup subtrees (cgroup v1 / hybrid hosts) -------------------

# cg_hierarchies -> lines "MOUNTPOINT OPTS REL" for every v1 hierarchy the
# caller is in: OPTS are the mount options naming the controllers (or
# none,name=X), REL the caller's cgroup path in it.
cg_hierarchies() {
  local id ctrls rel dev mp fstype opts _r
  while IFS=: read -r id ctrls rel; do
    [ -n "$ctrls" ] || continue
    while read -r dev mp fstype opts _r; do
      [ "$fstype" = cgroup ] || continue
      local want ok=1 o
      IFS=, read -ra want <<<"$ctrls"
      for o in "${want[@]}"; do [[ ",$opts," == *",$o,"* ]] || ok=0; done
      [ $ok = 1 ] || continue
      if [[ $ctrls == name=* ]]; then o="none,$ctrls"; else o=$ctrls; fi
      echo "$mp $o $rel"
      break
    done </proc/self/mounts
  done </proc/self/cgroup
}

cg_v2_only() { [ "$(stat -f -c %T /sys/fs/cgroup 2>/dev/null)" = cgroup2fs ]; }

# cg_enter NAME K: moves the calling (sub)shell into the node's cgroup in every
# hierarchy (created with the parent's cpuset).
cg_enter() {
  local name=$1 k=$2 mp opts rel d parent
  cg_v2_only && die "--kube needs a cgroup v1 or hybrid host (kubelet's node cgroup subtree is built per v1 hierarchy); this host mounts only cgroup2"
  while read -r mp opts rel; do
    parent=$mp${rel%/}
    d=$parent/ferry-testbed/$name-node$k
    mkdir -p "$d"
    if [[ ,$opts, == *,cpuset,* ]]; then
      for f in cpuset.cpus cpuset.mems; do
        [ -s "$(dirname "$d")/$f" ] || cat "$parent/$f" >"$(dirname "$d")/$f"
        [ -s "$d/$f" ] || cat "$parent/$f" >"$d/$f"
      done
    fi
    echo "$BASHPID" >"$d/cgroup.procs"
  done < <(cg_hierarchies)
}

# cg_remove NAME: removes the testbed's node cgroups (their processes are gone).
cg_remove() {
  local name=$1 mp opts rel d
  while read -r mp opts rel; do
    for d in "$mp"/ferry-testbed/"$name"-node* "$mp${rel%/}"/ferry-testbed/"$name"-node*; do
      [ -d "$d" ] || continue
      find "$d" -depth -type d -exec rmdir {} + 2>/dev/null || true
    done
  done < <(cg_hierarchies)
}

# cg_mount ROOT: inside a node's cgroup namespace, the v1 hierarchies (and
# the hybrid cgroup2) under ROOT/sys/fs/cgroup, rooted at the node's subtree.
cg_mount() {
  local r=$1 mp opts rel
  mount -t tmpfs -o mode=0755 cgroup "$r/sys/fs/cgroup"
  while read -r mp opts rel; do
    mkdir -p "$r$mp"
    mount -t cgroup -o "$opts" cgroup "$r$mp"
  done < <(cg_hierarchies)
  if grep -q ' /sys/fs/cgroup/unified cgroup2 ' /proc/self/mounts; then
    mkdir -p "$r/sys/fs/cgroup/unified"
    mount -t cgroup2 cgroup2 "$r/sys/fs/cgroup/unified"
  fi
}

# ---- nodes -----------------------------------------------------------------

# Runs as PID 1 of a fresh PID namespace (and new mount/UTS/IPC namespaces,
# inside the node's netns); stdout is the node's console.log on the host.
node_init() {
  local name=$1 k=$2 d r hostpid _x
  d=$(ndir "$name" "$k"); r=$d/root
  trap 'echo "ferry-testbed: FAILED at line $LINENO: $BASH_COMMAND"' ERR
  read -r hostpid _x </proc/self/stat # still the host's /proc: our host pid
  echo "$hostpid $(pid_start "$hostpid")" >"$d/pid.tmp" && mv "$d/pid.tmp" "$d/pid"
  hostname "node$k"
  rm -rf "$d/work" && mkdir -p "$d/upper" "$d/work" "$r"
  mount -t overlay "ferry-$name-node$k" -o "lowerdir=/,upperdir=$d/upper,workdir=$d/work" "$r"
  mount -t proc proc "$r/proc"
  mount -t sysfs sysfs "$r/sys"
  local kube=""; [ -f "$(sdir "$name")/kube" ] && kube=1 # (host paths vanish at pivot_root)
  [ -z "$kube" ] || cg_mount "$r"
  mount --bind /dev "$r/dev"
  mount -t devpts -o newinstance,ptmxmode=0666,mode=0620,gid=5 devpts "$r/dev/pts"
  mount --bind "$r/dev/pts/ptmx" "$r/dev/ptmx"
  mount -t tmpfs -o mode=1777 shm "$r/dev/shm"
  mount -t tmpfs -o mode=0755 run "$r/run"
  mount -t tmpfs -o mode=1777 tmp "$r/tmp"
  if [ -n "$kube" ]; then
    mkdir -p "$r/var/lib/containerd"
    mount -t tmpfs -o mode=0711 containerd "$r/var/lib/containerd"
  fi
  cd "$r"
  pivot_root . .
  umount -l . # detach the host's mount tree (and its copies of other testbeds' mounts)
  cd /
  [ -z "$kube" ] || mount --make-rshared /
  mkdir -p -m 0755 /run/sshd /run/lock
  [ -e /var/run ] || ln -s /run /var/run
  if [ ! -s "$SSHD_DIR/ssh_host_ed25519_key" ]; then
    ssh-keygen -q -t ed25519 -N '' -C "node$k" -f "$SSHD_DIR/ssh_host_ed25519_key"
    ssh-keygen -q -t ecdsa -N '' -C "node$k" -f "$SSHD_DIR/ssh_host_ecdsa_key"
  fi
  start_sshd
  echo "ferry-testbed: READY"
  exec -a ferry-init /bin/bash -c 'set +e; trap "" TERM INT HUP; while :; do /bin/sleep 2147483647 & wait; done' \
    </dev/null >/dev/null 2>&1
}

sshd_listening() { [ -n "$(ss -Hltn 'sport = :22' 2>/dev/null)" ]; }
start_sshd() { # inside a node: start sshd (child of the caller) and wait until it listens
  /usr/sbin/sshd -D -f "$SSHD_DIR/sshd_config" -E /var/log/ferry-sshd.log </dev/null &
  poll_until 15000 sshd_listening || { echo "ferry-testbed: sshd did not start" >&2; return 1; }
}

in_netns_listening() { [ -n "$(nsenter --net="/run/netns/$1" ss -Hltn 'sport = :22' 2>/dev/null)" ]; }
cmd_rekey() { # NAME K: new host keys, then replace the node's listening sshd
  local name=$1 k=$2 ns=$1-n$2 pids
  node_exec "$name" "$k" /bin/sh -ec "rm -f $SSHD_DIR/ssh_host_*
    ssh-keygen -q -t ed25519 -N '' -C node$k -f $SSHD_DIR/ssh_host_ed25519_key
    ssh-keygen -q -t ecdsa -N '' -C node$k -f $SSHD_DIR/ssh_host_ecdsa_key"
  mapfile -t pids < <(nsenter --net="/run/netns/$ns" ss -Hltnp 'sport = :22' | grep -o 'pid=[0-9]*' | cut -d= -f2 | sort -u)
  if [ ${#pids[@]} -gt 0 ]; then
    kill "${pids[@]}" 2>/dev/null || true
    poll_until 10000 all_dead "${pids[@]}" || kill -9 "${pids[@]}" 2>/dev/null || true
  fi
  poll_until 10000 eval "! in_netns_listening $ns" || die "old sshd of node$k still listening"
  node_exec "$name" "$k" setsid -f /usr/sbin/sshd -D -f "$SSHD_DIR/sshd_config" -E /var/log/ferry-sshd.log \
    </dev/null >/dev/null 2>&1
  poll_until 15000 in_netns_listening "$ns" || die "sshd of node$k did not restart"
}

launch_node() { # NAME K: boot node K (its netns must exist)
  local name=$1 k=$2 d
  d=$(ndir "$name" "$k")
  rm -f "$d/pid"
  [ -f "$d/console.log" ] && mv -f "$d/console.log" "$d/console.log.prev"
  setsid -f /bin/bash "$SELF" _node-launch "$name" "$k" </dev/null >"$d/console.log" 2>&1
}

node_launch() { # NAME K: (detached) enter the node's cgroups if --kube, then its namespaces
  local name=$1 k=$2 cg=()
  if [ -f "$(sdir "$name")/kube" ]; then cg_enter "$name" "$k"; cg=(--cgroup); fi
  exec nsenter --net="/run/netns/$name-n$k" -- \
    unshare --mount --uts --ipc --pid "${cg[@]}" --fork --propagation private -- \
    /bin/bash "$SELF" _node-init "$name" "$k"
}

node_settled() { # NAME K... : every node printed READY or FAILED (or its init is gone)
  local name=$1 k d; shift
  for k in "$@"; do
    d=$(ndir "$name" "$k")
    grep -qE '^ferry-testbed: (READY|FAILED)' "$d/console.log" 2>/dev/null && continue
    [ -f "$d/pid" ] && all_dead "$(cut -d" " -f1 "$d/pid")" && continue
    return 1
  done
}

wait_nodes() { # NAME K... : wait until the nodes are up; fail with their console on error
  local name=$1 k d bad=0; shift
  poll_until "${FERRY_TESTBED_BOOT_MS:-60000}" node_settled "$name" "$@" || true
  for k in "$@"; do
    d=$(ndir "$name" "$k")
    if ! grep -q '^ferry-testbed: READY' "$d/console.log" 2>/dev/null; then
      echo "testbed: node$k failed to boot; console:" >&2
      tail -n 20 "$d/console.log" >&2 2>/dev/null || true
      bad=1
    fi
  done
  return $bad
}

# ---- network -----------------------------------------------------------------

netns_add() {
  mkdir -p /run/netns
  if ! mountpoint -q /run/netns; then # first use: ip would bind-mount it; avoid a race
    mkdir -p "$TB_ROOT"
    flock "$TB_ROOT/.lock" ip netns add "$1"
  else
    ip netns add "$1"
  fi
}

# ns_side NETNS IP: commands for the far end (eth0) of a hub veth
ns_side() { printf 'link set lo up\naddr add %s/24 dev eth0\nlink set eth0 up\nroute add default via %s.1\n' "$2" "$NET"; }

# make_network NAME N: hub with br0 (.1), bastion (.2) and nodes (.11..) on
# veths (hub port b0/nK <-> eth0 in the netns); nothing in the host netns
make_network() {
  local name=$1 n=$2 hub=$1-hub k
  netns_add "$hub" # first: sets up /run/netns if needed
  {
    echo "netns add $name-bastion"
    for ((k = 1; k <= n; k++)); do echo "netns add $name-n$k"; done
  } | ip -batch -
  {
    printf 'link set lo up\nlink add br0 type bridge\naddr add %s.1/24 dev br0\nlink set br0 up\n' "$NET"
    echo "link add b0 type veth peer name eth0 netns $name-bastion"
    echo "link set b0 master br0 up"
    for ((k = 1; k <= n; k++)); do
      echo "link add n$k type veth peer name eth0 netns $name-n$k"
      echo "link set n$k master br0 up"
    done
  } | ip -n "$hub" -batch -
  ns_side "$name-bastion" "$NET.2" | ip -n "$name-bastion" -batch -
  for ((k = 1; k <= n; k++)); do ns_side "$name-n$k" "$(node_ip "$k")" | ip -n "$name-n$k" -batch -; done
}

# ---- json ----------------------------------------------------------------------

write_json() {
  local name=$1 s n k pid root sep="" owner
  s=$(sdir "$name"); n=$(node_count "$name"); owner=$(cat "$s/owner")
  {
    printf '{\n  "name": "%s",\n  "state_dir": "%s",\n  "owner": "%s",\n' "$name" "$s" "$owner"
    printf '  "subnet": "%s.0/24",\n  "gateway": "%s.1",\n  "hub_netns": "%s-hub",\n' "$NET" "$NET" "$name"
    printf '  "bastion": { "netns": "%s-bastion", "ip": "%s.2" },\n' "$name" "$NET"
    printf '  "ssh_port": 22,\n  "key_path": "%s/id_ed25519",\n' "$s"
    printf '  "encrypted_key_path": "%s/id_ed25519_enc",\n  "key_passphrase": "%s",\n' "$s" "$KEY_PW"
    printf '  "askpass": "%s/askpass",\n' "$s"
    printf '  "passwords": { "root": "%s", "alice": "%s", "bob": "%s", "carol": "%s" },\n' \
      "$ROOT_PW" "$ALICE_PW" "$BOB_PW" "$CAROL_PW"
    printf '  "nodes": ['
    for ((k = 1; k <= n; k++)); do
      pid=$(node_pid "$name" "$k")
      printf '%s\n    { "name": "node%d", "hostname": "node%d", "ip": "%s", "netns": "%s-n%d", ' \
        "$sep" "$k" "$k" "$(node_ip "$k")" "$name" "$k"
      root=null; [ -z "$pid" ] || root="\"/proc/$pid/root\""
      printf '"pid": %s, "root": %s, "upper": "%s/upper" }' "${pid:-null}" "$root" "$(ndir "$name" "$k")"
      sep=,
    done
    printf '\n  ]\n}\n'
  } >"$s/testbed.json.tmp"
  mv "$s/testbed.json.tmp" "$s/testbed.json"
}

# ---- commands ----------------------------------------------------------------

cmd_up() {
  local n=$1 name=$2 owner=$3 kube=$4 s t0 k start
  [[ $n =~ ^[0-9]+$ ]] && ((n >= 1 && n <= 200)) || die "node count must be 1..200"
  valid_name "$name"
  [ "$(id -u)" = 0 ] || die "must run as root"
  t0=$(now_ms)
  QUIET=1 cmd_down "$name"
  s=$(sdir "$name")
  mkdir -p "$s"
  if [ "$owner" != manual ]; then
    start=$(pid_start "$owner"); [ -n "$start" ] || die "owner pid $owner is not running"
    owner="$owner $start"
  fi
  echo "$owner" >"$s/owner"
  echo "$n" >"$s/nodes"
  if [ "$kube" = 1 ]; then cg_v2_only && die "--kube needs a cgroup v1 or hybrid host; this host mounts only cgroup2"; : >"$s/kube"; fi
  trap '[ -n "${FERRY_TESTBED_KEEP:-}" ] || QUIET=1 cmd_down "'"$name"'"' EXIT
  mkdir -p "$s/fs"
  # FERRY_TESTBED_DISK=1: node uppers on the disk under $TB_ROOT instead
  # of RAM (scale benchmarks whose nodes together hold more than memory).
  if [ -z "${FERRY_TESTBED_DISK:-}" ]; then
    mount -t tmpfs -o "size=$((4 * n))g,mode=0755" "ferry-testbed-$name" "$s/fs"
  fi
  # the encrypted key's KDF is the slowest step: overlap it with the network setup
  ssh-keygen -q -t ed25519 -N "$KEY_PW" -C "ferry-testbed-$name-enc" -f "$s/id_ed25519_enc" &
  local keygen=$!
  ssh-keygen -q -t ed25519 -N '' -C "ferry-testbed-$name" -f "$s/id_ed25519"
  printf '#!/bin/sh\n# SSH_ASKPASS helper: prints $FERRY_ASKPASS\nprintf "%%s\\n" "$FERRY_ASKPASS"\n' >"$s/askpass"
  chmod 0755 "$s/askpass"
  make_network "$name" "$n"
  wait "$keygen" || die "ssh-keygen failed"
  make_template "$s"
  for ((k = 1; k <= n; k++)); do
    local d; d=$(ndir "$name" "$k")
    mkdir -p "$d/upper/etc"
    cp -a "$s/fs/template/." "$d/upper/"
    echo "node$k" >"$d/upper/etc/hostname"
    printf '127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n%s\tnode%d\n' \
      "$(node_ip "$k")" "$k" >"$d/upper/etc/hosts"
    od -An -N16 -tx1 /dev/urandom | tr -d ' \n' >"$d/upper/etc/machine-id"
    echo >>"$d/upper/etc/machine-id"
    launch_node "$name" "$k"
  done
  wait_nodes "$name" $(seq 1 "$n") || die "up $name failed"
  write_json "$name"
  trap - EXIT
  log "up $name: $n nodes in $(($(now_ms) - t0)) ms; $s/testbed.json"
}

cmd_kill() {
  local name=$1 k=$2
  kill_netns_procs "$name-n$k"
  local pid; pid=$(node_pid "$name" "$k")
  if [ -n "$pid" ]; then
    kill -9 "$pid" 2>/dev/null || true
    poll_until 10000 all_dead "$pid" || true
  fi
  rm -f "$(ndir "$name" "$k")/pid"
  write_json "$name"
}

cmd_link() { # NAME K up|down: the node's cable (hub port)
  [[ $3 =~ ^(up|down)$ ]] || die "link state must be up or down"
  ip -n "$1-hub" link set "n$2" "$3"
}

cmd_start() {
  local name=$1 k=$2
  if [ -n "$(node_pid "$name" "$k")" ]; then log "node$k already running"; return 0; fi
  kill_netns_procs "$name-n$k" # leftovers of a half-dead node
  launch_node "$name" "$k"
  wait_nodes "$name" "$k" || die "start node$k failed"
  write_json "$name"
}

node_exec() { # NAME K CMD... (no env reset); on --kube nodes also the node's cgroups
  local pid; pid=$(node_pid "$1" "$2")
  [ -n "$pid" ] || die "node$2 of '$1' is not running"
  if [ -f "$(sdir "$1")/kube" ]; then
    ( cg_enter "$1" "$2"; exec nsenter -t "$pid" -m -u -i -n -p -r -w -C -- "${@:3}" )
    return
  fi
  nsenter -t "$pid" -m -u -i -n -p -r -w -- "${@:3}"
}

cmd_shape() {
  local name=$1 who=$2 rate=$3 port ns burst
  [[ $rate =~ ^[0-9]+(\.[0-9]+)?$ ]] || die "rate must be a number of Mbit/s"
  if [ "$who" = bastion ]; then port=b0 ns=$name-bastion; else
    k=$(node_index "$name" "$who"); port=n$k ns=$name-n$k
  fi
  if [ "$rate" = 0 ] || [[ $rate =~ ^0+(\.0+)?$ ]]; then
    ip netns exec "$name-hub" tc qdisc del dev "$port" root 2>/dev/null || true
    ip netns exec "$ns" tc qdisc del dev eth0 root 2>/dev/null || true
    return 0
  fi
  burst=$(perl -e 'my $b = int($ARGV[0] * 1e6 / 8 / 100); print $b < 16384 ? 16384 : $b' "$rate")
  ip netns exec "$name-hub" tc qdisc replace dev "$port" root tbf rate "${rate}mbit" burst "$burst" latency 100ms
  ip netns exec "$ns" tc qdisc replace dev eth0 root tbf rate "${rate}mbit" burst "$burst" latency 100ms
}

cmd_list() {
  local d name owner
  printf '%-20s %5s  %s\n' NAME NODES OWNER
  for d in "$TB_ROOT"/*/; do
    [ -f "$d/nodes" ] || continue
    name=$(basename "$d"); owner=$(cat "$d/owner" 2>/dev/null || echo "?")
    printf '%-20s %5s  %s\n' "$name" "$(cat "$d/nodes")" "$owner"
  done
}

cmd_gc() {
  local d owner pid start
  [ -d "$TB_ROOT" ] || return 0
  exec 9>"$TB_ROOT/.lock"
  flock -w 60 9 || return 0 # wait for a concurrent gc
  for d in "$TB_ROOT"/*/; do
    [ -f "$d/owner" ] || continue
    read -r pid start <"$d/owner" || continue
    [ "$pid" != manual ] && [ -n "${start:-}" ] || continue
    [ "$(pid_start "$pid")" = "$start" ] && continue
    log "gc: owner $pid of $(basename "$d") is gone"
    cmd_down "$(basename "$d")"
  done
}

usage() { sed -n '2,/^set -E/p' "$SELF" | sed -e '$d' -e 's/^# \{0,1\}//' >&2; exit 2; }

main() {
  local cmd=${1:-}; [ $# -gt 0 ] && shift
  local name=ftb owner=manual user=root
  case $cmd in
    up)
      [ $# -ge 1 ] || usage
      local n=$1 kube=0; shift
      while [ $# -gt 0 ]; do
        case $1 in --name) name=$2; shift 2 ;; --owner) owner=$2; shift 2 ;; --kube) kube=1; shift ;; *) usage ;; esac
      done
      cmd_up "$n" "$name" "$owner" "$kube" ;;
    down)
      [ "${1:-}" = --name ] && name=${2:?}
      [ $# -eq 1 ] && name=$1
      cmd_down "$name" ;;
    exec)
      [ $# -ge 2 ] || usage
      name=$1; valid_name "$name"; local k; k=$(node_index "$name" "$2"); shift 2
      [ "${1:-}" = -- ] && shift
      [ $# -gt 0 ] || set -- bash -l
      node_exec "$name" "$k" env -i PATH="$NODE_PATH" HOME=/root USER=root LOGNAME=root SHELL=/bin/bash \
        LANG=C.UTF-8 TERM="${TERM:-dumb}" "$@" ;;
    bastion)
      [ $# -ge 1 ] || usage
      name=$1; valid_name "$name"; shift
      [ "${1:-}" = -- ] && shift
      [ $# -gt 0 ] || set -- bash
      exec ip netns exec "$name-bastion" "$@" ;;
    ssh)
      [ $# -ge 2 ] || usage
      name=$1; valid_name "$name"; local k; k=$(node_index "$name" "$2"); shift 2
      [ "${1:-}" = --user ] && { user=$2; shift 2; }
      [ "${1:-}" = -- ] && shift
      exec ip netns exec "$name-bastion" ssh -o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null \
        -o LogLevel=ERROR -i "$(sdir "$name")/id_ed25519" "$user@$(node_ip "$k")" "$@" ;;
    kill | start | rekey)
      [ $# -eq 2 ] || usage
      name=$1; valid_name "$name"; local k; k=$(node_index "$name" "$2")
      case $cmd in
        kill) cmd_kill "$name" "$k" ;;
        start) cmd_start "$name" "$k" ;;
        rekey) cmd_rekey "$name" "$k" ;;
      esac ;;
    shape) [ $# -eq 3 ] || usage; valid_name "$1"; cmd_shape "$1" "$2" "$3" ;;
    link) [ $# -eq 3 ] || usage; valid_name "$1"; cmd_link "$1" "$(node_index "$1" "$2")" "$3" ;;
    list) cmd_list ;;
    info) [ $# -eq 1 ] || usage; valid_name "$1"; cat "$(sdir "$1")/testbed.json" ;;
    gc) cmd_gc ;;
    _node-init) node_init "$@" ;;
    _node-launch) node_launch "$@" ;;
    *) usage ;;
  esac
}

main "$@"
exit
