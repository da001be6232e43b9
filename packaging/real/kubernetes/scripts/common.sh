#!/usr/bin/env bash
# Helpers shared by the hook scripts (sourced, not run). Services run as
# systemd units where systemd is PID 1, else under a small supervisor
# (restart on exit, as Restart=always) with a pidfile: testbed nodes and
# containers have no systemd.

log() { echo "[$(basename "$0")] $*"; }
die() { echo "[$(basename "$0")] ERROR: $*" >&2; exit 1; }

has_systemd() { [ -d /run/systemd/system ] && command -v systemctl >/dev/null 2>&1; }

SUPERVISE_DIR=/run/ferry-k8s

# svc_start NAME CMD...: (re)starts service NAME running CMD, restarted 2 s
# after it exits. Logs: journald, or /var/log/ferry-k8s/NAME.log.
svc_start() {
  local name=$1; shift
  if has_systemd; then
    cat >"/etc/systemd/system/$name.service" <<UNIT
[Unit]
Description=$name (installed by the ferry cluster image)
After=network-online.target

[Service]
ExecStart=$*
Restart=always
RestartSec=2
Delegate=yes
KillMode=process
LimitNOFILE=1048576
Environment=HOME=/root

[Install]
WantedBy=multi-user.target
UNIT
    systemctl daemon-reload
    systemctl enable "$name" >/dev/null 2>&1
    systemctl restart "$name"
    return
  fi
  svc_stop "$name"
  mkdir -p "$SUPERVISE_DIR" /var/log/ferry-k8s
  rm -f "$SUPERVISE_DIR/$name.stop"
  # The supervisor leads its own session; CMD runs as its child.
  setsid -f bash -c '
    echo $$ >"$0/$1.pid"
    name=$1; shift
    trap "kill -TERM \$child 2>/dev/null; wait \$child; exit 0" TERM
    while [ ! -e "'"$SUPERVISE_DIR"'/$name.stop" ]; do
      echo "--- $(date -u +%FT%TZ) starting $*"
      "$@" &
      child=$!
      wait $child
      echo "--- $(date -u +%FT%TZ) exited: $?"
      [ -e "'"$SUPERVISE_DIR"'/$name.stop" ] && break
      sleep 2
    done' "$SUPERVISE_DIR" "$name" "$@" </dev/null >>"/var/log/ferry-k8s/$name.log" 2>&1
  local i
  for i in $(seq 1 100); do
    [ -s "$SUPERVISE_DIR/$name.pid" ] && return 0
    sleep 0.05
  done
  die "supervisor of $name did not start"
}

# svc_stop NAME: stops the service and waits for its process to end.
svc_stop() {
  local name=$1 pid i
  if has_systemd; then
    if [ -f "/etc/systemd/system/$name.service" ]; then
      systemctl disable --now "$name" >/dev/null 2>&1 || true
    fi
    return 0
  fi
  [ -f "$SUPERVISE_DIR/$name.pid" ] || return 0
  pid=$(cat "$SUPERVISE_DIR/$name.pid")
  touch "$SUPERVISE_DIR/$name.stop"
  if [ -n "$pid" ] && [ -d "/proc/$pid" ]; then
    kill -TERM "$pid" 2>/dev/null || true
    for i in $(seq 1 200); do [ -d "/proc/$pid" ] || break; sleep 0.05; done
    [ -d "/proc/$pid" ] && kill -KILL -- "-$pid" 2>/dev/null || true
  fi
  rm -f "$SUPERVISE_DIR/$name.pid"
}

# svc_remove NAME: stops it and removes its unit.
svc_remove() {
  svc_stop "$1"
  if has_systemd && [ -f "/etc/systemd/system/$1.service" ]; then
    rm -f "/etc/systemd/system/$1.service"
    systemctl daemon-reload
  fi
  rm -f "$SUPERVISE_DIR/$1.stop"
}

# port_open PORT [HOST]
port_open() { (exec 3<>"/dev/tcp/${2:-127.0.0.1}/$1") 2>/dev/null; }

# wait_for SECONDS CMD...: polls CMD every 0.2 s.
wait_for() {
  local secs=$1 i; shift
  for i in $(seq 1 $((secs * 5))); do
    "$@" && return 0
    sleep 0.2
  done
  return 1
}

# install_bin SRC DEST: copies when different (re-run safe).
install_bin() {
  [ -x "$1" ] || die "$1 is missing from the image"
  cmp -s "$1" "$2" 2>/dev/null || install -m 0755 "$1" "$2"
}

# umount_under DIR: unmounts everything mounted below DIR, deepest first.
umount_under() {
  local m
  awk -v d="$1" '$2 == d || index($2, d "/") == 1 {print $2}' /proc/self/mounts | sort -r | while read -r m; do
    umount "$m" 2>/dev/null || umount -l "$m" 2>/dev/null || true
  done
}
