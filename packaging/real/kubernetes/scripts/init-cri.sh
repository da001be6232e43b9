#!/usr/bin/env bash
# init-cri.sh REGISTRY_DOMAIN REGISTRY_PORT: installs containerd + runc
# (cri/) and crictl (bin/), writes /etc/containerd/config.toml (from
# etc/config.toml, rendered by the installer) with the snapshotter and
# cgroup driver this host supports, and the registry hosts: the cluster
# registry over plain HTTP, and the public registries mirrored to it so
# unmodified manifests run offline (what image-cri-shim does in labring's
# images). Starts containerd and waits for its CRI.
set -euo pipefail
cd "$(dirname "$0")"
source ./common.sh

domain=${1:?usage: init-cri.sh REGISTRY_DOMAIN REGISTRY_PORT}
port=${2:?usage: init-cri.sh REGISTRY_DOMAIN REGISTRY_PORT}
[[ "$port" =~ ^[0-9]+$ ]] || die "registry port '$port' is not a number"
data=${criData:-/var/lib/containerd}
[ -f ../etc/config.toml ] || die "../etc/config.toml is missing (rendered from config.toml.tmpl)"
getent ahosts "$domain" >/dev/null || die "$domain does not resolve; the installer writes it to /etc/hosts before init-cri"

for b in containerd containerd-shim-runc-v2 ctr; do install_bin "../cri/$b" "/usr/bin/$b"; done
install_bin ../cri/runc /usr/bin/runc
install_bin ../bin/crictl /usr/bin/crictl
printf 'runtime-endpoint: unix:///run/containerd/containerd.sock\nimage-endpoint: unix:///run/containerd/containerd.sock\ntimeout: 30\n' >/etc/crictl.yaml

mkdir -p "$data" /etc/containerd
# overlayfs cannot use an overlay (or another non-supporting fs) as its upper.
fstype=$(stat -f -c %T "$data")
snapshotter=overlayfs
case "$fstype" in overlayfs | aufs) snapshotter=native ;; esac
cgroup=false
has_systemd && cgroup=true
# Lowering oom_score_adj needs CAP_SYS_RESOURCE; without it runc cannot
# start a pod whose oom_score_adj the kubelet sets below containerd's own.
oom_score=-999 restrict=false
if ! (echo -1 >/proc/self/oom_score_adj) 2>/dev/null; then oom_score=0 restrict=true; fi
sed -e "s/@SNAPSHOTTER@/$snapshotter/" -e "s/@SYSTEMD_CGROUP@/$cgroup/" \
  -e "s/@OOM_SCORE@/$oom_score/" -e "s/@RESTRICT_OOM@/$restrict/" ../etc/config.toml >/etc/containerd/config.toml.tmp
chmod 0600 /etc/containerd/config.toml.tmp
mv /etc/containerd/config.toml.tmp /etc/containerd/config.toml

hosts_toml() { # DIR SERVER
  mkdir -p "/etc/containerd/certs.d/$1"
  printf 'server = "%s"\n\n[host."http://%s:%s"]\n  capabilities = ["pull", "resolve"]\n  skip_verify = true\n' \
    "$2" "$domain" "$port" >"/etc/containerd/certs.d/$1/hosts.toml"
}
hosts_toml "$domain:$port" "http://$domain:$port"
for upstream in docker.io registry.k8s.io k8s.gcr.io quay.io ghcr.io; do
  hosts_toml "$upstream" "http://$domain:$port"
done

svc_start containerd /usr/bin/containerd --config /etc/containerd/config.toml
wait_for 60 crictl info >/dev/null 2>&1 || die "containerd's CRI did not answer within 60 s (see its log)"
log "containerd running (snapshotter $snapshotter on $fstype, SystemdCgroup=$cgroup, restrict_oom_score_adj=$restrict); registry $domain:$port"
