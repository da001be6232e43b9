#!/usr/bin/env bash
# init-registry.sh REGISTRY_DATA REGISTRY_CONFIG: installs the registry
# (docker distribution, cri/registry) with htpasswd auth and starts it on
# :$registryPort serving REGISTRY_DATA; waits until it answers.
set -euo pipefail
cd "$(dirname "$0")"
source ./common.sh

data=${1:-/var/lib/registry}
config=${2:-/etc/registry}
port=${registryPort:-5000}
[ -f ../etc/registry_config.yml ] || die "../etc/registry_config.yml is missing (rendered from registry_config.yml.tmpl)"
[ -s ../etc/registry_htpasswd ] || die "../etc/registry_htpasswd is missing; set registryUsername and registryPassword"
install_bin ../cri/registry /usr/bin/registry
mkdir -p "$data" "$config"
cp ../etc/registry_config.yml "$config/config.yml"
install -m 0600 ../etc/registry_htpasswd "$config/registry_htpasswd"
svc_start registry /usr/bin/registry serve "$config/config.yml"
wait_for 60 port_open "$port" || die "the registry did not open :$port within 60 s (see its log)"
log "registry serving $data on :$port"
