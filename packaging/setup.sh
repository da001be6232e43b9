#!/usr/bin/env bash
# Installs what building and testing ferry needs on a Debian machine, only
# where missing: apt packages (OpenSSH server for testbed nodes, musl-tools for
# the static agent, nftables, iproute2, sudo, openssl, curl for the load
# balancer e2e; qemu-system-x86, busybox-static, ipvsadm and cpio for the IPVS
# VM test, whose kernel package tests/vm/prepare.sh fetches with
# `apt-get download`; docker-registry for the fixture cluster image,
# etcd-server and etcd-client for the PKI test; apache2-utils' htpasswd for
# the registry auth test; containerd, runc, containernetworking-plugins,
# iptables, conntrack and ipset for the real cluster image, packaging/real/;
# as root, chromium and chromium-driver for the dashboard's browser test,
# tests/tests/e2e_dashboard.rs, a root test) and the musl rust target.
set -euo pipefail

need=()
for pair in sshd:openssh-server x86_64-linux-musl-gcc:musl-tools nft:nftables ip:iproute2 tc:iproute2 \
            sudo:sudo openssl:openssl ssh-keygen:openssh-client curl:curl \
            qemu-system-x86_64:qemu-system-x86 ipvsadm:ipvsadm cpio:cpio \
            docker-registry:docker-registry etcd:etcd-server etcdctl:etcd-client \
            htpasswd:apache2-utils containerd:containerd runc:runc iptables:iptables \
            conntrack:conntrack ipset:ipset; do
  bin=${pair%%:*} pkg=${pair#*:}
  if ! command -v "$bin" >/dev/null 2>&1 && ! [ -x "/usr/sbin/$bin" ]; then
    need+=("$pkg")
  fi
done
# The dashboard's browser test runs as root only: headless Chromium there.
if [ "$(id -u)" -eq 0 ]; then
  [ -x /usr/bin/chromium ] || need+=(chromium)
  [ -x /usr/bin/chromedriver ] || need+=(chromium-driver)
fi
# The VM's /init must be a static busybox.
if ! [ -x /bin/busybox ] || ldd /bin/busybox >/dev/null 2>&1; then
  need+=(busybox-static)
fi
[ -x /usr/lib/cni/bridge ] || need+=(containernetworking-plugins)
# /etc/protocols and /etc/services go into the real tier's kube-proxy image.
[ -s /etc/protocols ] && [ -s /etc/services ] || need+=(netbase)
if [ ${#need[@]} -gt 0 ]; then
  mapfile -t need < <(printf '%s\n' "${need[@]}" | sort -u)
  echo "setup: installing ${need[*]}"
  SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
fi
if ! rustup target list --installed 2>/dev/null | grep -qx x86_64-unknown-linux-musl; then
  echo "setup: adding rust target x86_64-unknown-linux-musl"
  rustup target add x86_64-unknown-linux-musl
fi
