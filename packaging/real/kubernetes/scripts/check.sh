#!/usr/bin/env bash
# check.sh REGISTRY_DATA: preflight before anything is installed, as
# labring's check.sh: no docker daemon, the registry data path is not a
# file, the kubelet/control-plane ports and sealos' 5050-5054 are free.
set -euo pipefail
cd "$(dirname "$0")"
source ./common.sh

data=${1:-/var/lib/registry}
if [ -S /var/run/docker.sock ] || pgrep -x dockerd >/dev/null 2>&1; then
  die "docker runs on this host; remove it first (the cluster uses containerd)"
fi
[ -f "$data" ] && die "registry data path $data is a file; remove it or set registryData"
for p in 6443 2379 2380 $(seq 10249 10259) $(seq 5050 5054); do
  port_open "$p" && die "port $p is in use; free it (or reset the old cluster) before installing"
done
for tool in iptables nft mount umount setsid; do
  command -v "$tool" >/dev/null 2>&1 || die "$tool is missing; install it first"
done
log "ok"
