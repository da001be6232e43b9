#!/bin/busybox sh
# /init of the load balancer test VM: mounts, loads the IPVS and nf_tables
# modules, configures
# qemu's user network (10.0.2.15/24, host = 10.0.2.2), then keeps
# `ferry-agent serve` running (a killed agent restarts, as under systemd).
/bin/busybox --install -s /bin
export PATH=/usr/sbin:/usr/bin:/sbin:/bin
mount -t proc proc /proc
mount -t sysfs sys /sys
mount -t devtmpfs dev /dev
mount -t tmpfs tmp /tmp
depmod
for m in virtio_pci virtio_net dummy ip_vs ip_vs_rr ip_vs_wrr ip_vs_lc ip_vs_wlc ip_vs_sh ip_vs_dh \
         nf_tables nft_chain_nat nft_nat nft_numgen nft_hash; do
  modprobe $m || echo "FERRY-VM: modprobe $m failed"
done
ip link set lo up
ip link set eth0 up
ip addr add 10.0.2.15/24 dev eth0
ip route add default via 10.0.2.2
echo "FERRY-VM-READY $(cut -d' ' -f1 /proc/uptime)"
while true; do
  /ferry-agent serve --listen 0.0.0.0:7443 --tls-dir /var/lib/ferry/agent/tls \
    --node-name vm --lb-dir /var/lib/ferry/agent/lb $(cat /etc/ferry-agent.args 2>/dev/null)
  echo "FERRY-AGENT-EXITED $?"
  sleep 0.2
done
