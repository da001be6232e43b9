#!/usr/bin/env bash
# clean.sh: undoes init.sh and what kubeadm and the pod network left:
# kubelet stopped, `kubeadm reset -f` (etcd member, containers, files),
# mounts under /var/lib/kubelet, kube-proxy's and the CNI's rules and links,
# /etc/kubernetes, /etc/cni, /opt/cni, ~/.kube, the binaries.
set -euo pipefail
cd "$(dirname "$0")"
source ./common.sh

svc_stop kubelet
if [ -x /usr/bin/kubeadm ]; then
  /usr/bin/kubeadm reset -f --cri-socket unix:///run/containerd/containerd.sock 2>&1 | tail -n 3 || true
fi
svc_remove kubelet
umount_under /var/lib/kubelet
rm -rf /var/lib/kubelet /etc/kubernetes /var/lib/etcd /etc/cni /opt/cni /var/lib/cni /root/.kube \
  /usr/libexec/ferry-k8s /etc/default/kubelet /var/log/pods /var/log/containers
# kube-proxy (nftables, iptables and IPVS modes) and the pod network.
for fam in ip ip6; do nft delete table "$fam" kube-proxy 2>/dev/null || true; done
for t in filter nat mangle; do
  if iptables-save -t "$t" 2>/dev/null | grep -q -- '-A KUBE-\|:KUBE-'; then
    iptables-save -t "$t" | grep -v -- 'KUBE-' | iptables-restore -T "$t" 2>/dev/null || true
  fi
done
command -v ipvsadm >/dev/null 2>&1 && [ -e /proc/net/ip_vs ] && ipvsadm -C 2>/dev/null || true
for l in kube-ipvs0 cni0; do ip link del "$l" 2>/dev/null || true; done
ip route flush proto 76 2>/dev/null || true
rm -f /usr/bin/kubeadm /usr/bin/kubelet /usr/bin/kubectl
log "kubernetes removed from this host"
