#!/usr/bin/env bash
# Prepares the IPVS test VM in CACHE (default target/vm-cache): Debian's
# cloud kernel (fetched with `apt-get download`, unpacked with dpkg-deb, never
# installed on this host) and a base initramfs (gzip'd newc cpio) with a
# static busybox as /init, the kernel modules IPVS needs (depmod runs at
# boot), and ipvsadm, iproute2's `ip` and `nft` with their shared libraries.
# The test appends a second archive with the agent and its TLS material.
# Prints `vmlinuz=PATH` and `initrd=PATH`. Exit 3 = cannot run here (the
# reason on stderr, starting with SKIP).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
cache=${1:-$here/../../target/vm-cache}
mkdir -p "$cache"
cache=$(cd "$cache" && pwd)

skip() { echo "SKIP: $*" >&2; exit 3; }
command -v qemu-system-x86_64 >/dev/null || skip "qemu-system-x86_64 missing (apt-get install qemu-system-x86)"
for t in cpio gzip dpkg-deb apt-get; do command -v $t >/dev/null || skip "$t missing"; done
busybox=/bin/busybox
[ -x "$busybox" ] && ! ldd "$busybox" >/dev/null 2>&1 || skip "static busybox missing (apt-get install busybox-static)"
for b in ipvsadm ip nft; do command -v $b >/dev/null || skip "$b missing (apt-get install ipvsadm iproute2 nftables)"; done

# 1. The kernel package (the version the cloud meta-package points at).
kdir=$cache/kernel
if ! [ -f "$kdir/done" ]; then
  pkg=$(apt-cache depends linux-image-cloud-amd64 2>/dev/null | awk '/Depends: linux-image-/{print $2; exit}')
  [ -n "$pkg" ] || { apt-get update -qq || true; pkg=$(apt-cache depends linux-image-cloud-amd64 2>/dev/null | awk '/Depends: linux-image-/{print $2; exit}'); }
  [ -n "$pkg" ] || skip "no linux-image-cloud-amd64 in the apt sources"
  rm -rf "$kdir" && mkdir -p "$kdir/deb"
  (cd "$kdir/deb" && { apt-get download "$pkg" >/dev/null 2>&1 || { apt-get update -qq && apt-get download "$pkg" >/dev/null 2>&1; }; }) \
    || skip "apt-get download $pkg failed"
  dpkg-deb -x "$kdir"/deb/*.deb "$kdir/root"
  rm -rf "$kdir/deb"
  touch "$kdir/done"
fi
vmlinuz=$(ls "$kdir"/root/boot/vmlinuz-* | head -1)
kver=${vmlinuz##*/vmlinuz-}
mods=$kdir/root/lib/modules/$kver/kernel

# 2. The base initramfs.
initrd=$cache/base-$kver.cpio.gz
if ! [ -f "$initrd" ] || [ "$here/prepare.sh" -nt "$initrd" ] || [ "$here/init.sh" -nt "$initrd" ]; then
  root=$(mktemp -d)
  trap 'rm -rf "$root"' EXIT
  mkdir -p "$root"/{bin,sbin,usr/bin,usr/sbin,proc,sys,dev,tmp,run,etc,root,var/lib/ferry/agent}
  cp "$busybox" "$root/bin/busybox"
  cp "$here/init.sh" "$root/init" && chmod 755 "$root/init"
  # Modules: netfilter (IPVS and its schedulers, nf_tables, NAT), dummy,
  # virtio networking.
  want=(net/netfilter net/ipv4/netfilter net/ipv6/netfilter lib/libcrc32c.ko crypto/crc32c_generic.ko
        arch/x86/crypto/crc32c-intel.ko drivers/virtio drivers/net/virtio_net.ko
        drivers/net/net_failover.ko net/core/failover.ko drivers/net/dummy.ko)
  for w in "${want[@]}"; do
    [ -e "$mods/$w" ] || continue
    dst=$root/lib/modules/$kver/kernel/$(dirname "$w")
    mkdir -p "$dst" && cp -r "$mods/$w" "$dst/"
  done
  cp "$kdir/root/lib/modules/$kver"/modules.{order,builtin} "$root/lib/modules/$kver/" 2>/dev/null || true
  # Dynamic tools with their libraries (same Debian release as the host).
  for b in ipvsadm ip nft; do
    p=$(command -v $b); cp "$p" "$root/usr/sbin/"
    for lib in $(ldd "$p" | grep -o '/[^ ]*'); do
      mkdir -p "$root$(dirname "$lib")" && cp -L "$lib" "$root$lib"
    done
  done
  echo "root:x:0:0:root:/root:/bin/sh" > "$root/etc/passwd"
  (cd "$root" && find . | cpio -o -H newc --quiet | gzip -1) > "$initrd.tmp"
  mv "$initrd.tmp" "$initrd"
fi
echo "vmlinuz=$vmlinuz"
echo "initrd=$initrd"
