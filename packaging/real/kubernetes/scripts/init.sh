#!/usr/bin/env bash
# init.sh: prepares the host for kubeadm (kernel settings, kubeadm, kubelet,
# kubectl into /usr/bin), installs the kubelet service and starts it (it
# waits for the configuration kubeadm writes), and pre-pulls the sandbox
# image from the cluster registry.
set -euo pipefail
cd "$(dirname "$0")"
source ./common.sh

for b in kubeadm kubelet kubectl; do install_bin "../bin/$b" "/usr/bin/$b"; done

# Kernel: modules where loadable (built in is fine), forwarding, bridge
# netfilter (per network namespace on current kernels).
for m in overlay br_netfilter ip_vs ip_vs_rr ip_vs_wrr ip_vs_sh nf_conntrack; do
  modprobe "$m" >/dev/null 2>&1 || true
done
sysctl_set() { [ -e "/proc/sys/${1//.//}" ] && echo "$2" >"/proc/sys/${1//.//}" 2>/dev/null || true; }
sysctl_set net.ipv4.ip_forward 1
sysctl_set net.bridge.bridge-nf-call-iptables 1
sysctl_set net.bridge.bridge-nf-call-ip6tables 1
sysctl_set net.ipv4.conf.all.rp_filter 0
[ "$(cat /proc/sys/net/ipv4/ip_forward)" = 1 ] || die "cannot enable net.ipv4.ip_forward"
if [ -n "$(tail -n +2 /proc/swaps)" ]; then swapoff -a || die "swap is on and swapoff failed; kubelet refuses swap"; fi

# The kubelet, as kubeadm's systemd drop-in runs it: flags from kubeadm
# (kubeadm-flags.env) and the image (etc/kubelet.env), re-read at each start.
mkdir -p /etc/kubernetes/manifests /var/lib/kubelet /etc/default /usr/libexec/ferry-k8s
if [ -f ../etc/kubelet.env ]; then cp ../etc/kubelet.env /etc/default/kubelet; else : >/etc/default/kubelet; fi
cat >/usr/libexec/ferry-k8s/kubelet-start <<'SH'
#!/bin/bash
# Starts the kubelet as kubeadm's 10-kubeadm.conf drop-in does.
KUBELET_KUBEADM_ARGS="" KUBELET_EXTRA_ARGS=""
[ -f /var/lib/kubelet/kubeadm-flags.env ] && . /var/lib/kubelet/kubeadm-flags.env
[ -f /etc/default/kubelet ] && . /etc/default/kubelet
if [ ! -f /var/lib/kubelet/config.yaml ]; then
  echo "kubelet: waiting for kubeadm to write /var/lib/kubelet/config.yaml" >&2
  exit 1
fi
# shellcheck disable=SC2086 # flag lists split on spaces, as systemd does
exec /usr/bin/kubelet --bootstrap-kubeconfig=/etc/kubernetes/bootstrap-kubelet.conf \
  --kubeconfig=/etc/kubernetes/kubelet.conf --config=/var/lib/kubelet/config.yaml \
  $KUBELET_KUBEADM_ARGS $KUBELET_EXTRA_ARGS
SH
chmod 0755 /usr/libexec/ferry-k8s/kubelet-start
svc_start kubelet /usr/libexec/ferry-k8s/kubelet-start

sandbox="${registryDomain:-sealos.hub}:${registryPort:-5000}/${sandboxImage:-pause:3.10.1}"
crictl pull "$sandbox" >/dev/null || die "cannot pull the sandbox image $sandbox from the cluster registry"
log "kubeadm/kubelet/kubectl $(kubelet --version 2>/dev/null | awk '{print $2}') installed; kubelet service started; $sandbox pulled"
