#!/usr/bin/env bash
# clean-registry.sh REGISTRY_DATA REGISTRY_CONFIG: undoes init-registry.sh.
set -euo pipefail
cd "$(dirname "$0")"
source ./common.sh

data=${1:-/var/lib/registry}
config=${2:-/etc/registry}
svc_remove registry
rm -f /usr/bin/registry
rm -rf "$config"
case "$data" in /|/var|/var/lib|"") die "refusing to remove '$data'" ;; esac
if [ -L "$data" ]; then rm -f "$data"; else rm -rf "$data"; fi
log "registry removed"
