#!/usr/bin/env bash
# clean-cri.sh CRI_DATA: undoes init-cri.sh: every pod and container
# removed, containerd and its shims stopped, its mounts and state removed.
set -euo pipefail
cd "$(dirname "$0")"
source ./common.sh

data=${1:-/var/lib/containerd}
case "$data" in /|/var|/var/lib|"") die "refusing to remove '$data'" ;; esac
if command -v crictl >/dev/null 2>&1 && crictl info >/dev/null 2>&1; then
  crictl rmp -fa >/dev/null 2>&1 || true
  crictl rm -fa >/dev/null 2>&1 || true
fi
svc_remove containerd
pkill -KILL -f containerd-shim-runc-v2 2>/dev/null || true
wait_for 10 bash -c '! pgrep -f containerd-shim-runc-v2 >/dev/null' || true
umount_under /run/containerd
umount_under "$data"
if mountpoint -q "$data"; then
  # A dedicated filesystem (a volume, the testbed's tmpfs): empty it.
  find "$data" -mindepth 1 -maxdepth 1 -exec rm -rf {} +
else
  rm -rf "$data"
fi
rm -rf /run/containerd /etc/containerd /etc/crictl.yaml
rm -f /usr/bin/containerd /usr/bin/containerd-shim-runc-v2 /usr/bin/ctr /usr/bin/runc /usr/bin/crictl
log "containerd removed"
