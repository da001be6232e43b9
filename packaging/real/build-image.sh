#!/usr/bin/env bash
# Builds ferry's REAL cluster images with `ferry build`, into the image store
# of the calling environment (FERRY_HOME / FERRY_DATA_ROOT):
#   sealos.hub:5000/{kube-apiserver,kube-controller-manager,kube-scheduler,
#     kube-proxy}:<k8s>, sealos.hub:5000/etcd:<tag>, sealos.hub:5000/coredns:<v>,
#     sealos.hub:5000/pause:<v>      control-plane images (FROM scratch + binary)
#   sealos.hub:5000/ferry/busybox:1, sealos.hub:5000/ferry/bridge-cni:v1
#   localhost/ferry/kubernetes:<k8s>  the rootfs cluster image (labring layout;
#                                     its registry/ holds the images above)
#   localhost/ferry/network:v1        the pod network (application image)
#   localhost/ferry/helm:<helm>       helm, as labring/helm (application image)
#   localhost/ferry/hello-a:v1, localhost/ferry/hello-b:v1
#                                     chart apps in labring's layout
#
#   FERRY_BIN=target/debug/ferry bash packaging/real/build-image.sh [K8S_VERSION] [STAGE_DIR]
#
# The binaries come from build-binaries.sh and build-helm.sh (cached by
# version; FERRY_HELM_VERSION picks helm's). Prints the image names, one a
# line: rootfs, network, helm, hello-a, hello-b.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
K8S_VERSION=${1:-${FERRY_K8S_VERSION:-v1.34.4}}
STAGE=${2:-$here/../../target/real-image/$K8S_VERSION}
FERRY=${FERRY_BIN:-ferry}
HELM_VERSION=${FERRY_HELM_VERSION:-v3.21.4}   # build-helm.sh's default
# shellcheck source=packaging/real/lib.sh
source "$here/lib.sh"
CACHE=$REAL_CACHE/k8s-$K8S_VERSION
step() { printf '[image %s] %s\n' "$(date +%T)" "$*" >&2; }

bash "$here/build-binaries.sh" "$K8S_VERSION" >&2
bash "$here/build-helm.sh" "$HELM_VERSION" >&2
HELM=$REAL_CACHE/helm-$HELM_VERSION/bin/helm
BIN=$CACHE/bin
# shellcheck source=/dev/null
source "$CACHE/versions.env"
REG=sealos.hub:5000
for tool in containerd containerd-shim-runc-v2 ctr runc docker-registry busybox nft ipset; do
  command -v "$tool" >/dev/null 2>&1 || [ -x "/usr/sbin/$tool" ] ||
    { echo "build-image: $tool is not installed (bash packaging/setup.sh)" >&2; exit 1; }
done
case "$STAGE" in /|"") echo "build-image: refusing STAGE '$STAGE'" >&2; exit 1 ;; esac
rm -rf "$STAGE"
mkdir -p "$STAGE"

# copy_with_libs CTX FILE...: FILE and the shared libraries it loads, at
# their host paths inside CTX (for the few dynamically linked tools).
copy_with_libs() {
  local ctx=$1 f lib; shift
  for f in "$@"; do
    f=$(readlink -f "$f")
    mkdir -p "$ctx$(dirname "$f")"
    cp -L "$f" "$ctx$f"
    for lib in $(ldd "$f" 2>/dev/null | grep -o '/[^ ]*' || true); do
      mkdir -p "$ctx$(dirname "$lib")"
      [ -e "$ctx$lib" ] || cp -L "$lib" "$ctx$lib"
    done
  done
}

# component NAME TAG BINARY [ENTRY]: FROM scratch + the static binary.
component() {
  local name=$1 tag=$2 bin=$3 entry=${4:-/usr/local/bin/$3} ctx=$STAGE/components/$1
  mkdir -p "$ctx/usr/local/bin" "$ctx/tmp"
  chmod 1777 "$ctx/tmp"
  install -m 0755 "$BIN/$bin" "$ctx$entry"
  cat >"$ctx/Kubefile" <<KF
FROM scratch
COPY . /
ENV PATH=/usr/local/bin:/usr/local/sbin:/usr/sbin:/usr/bin:/sbin:/bin
ENTRYPOINT ["$entry"]
KF
}
step "staging component images ($K8S_VERSION, etcd $ETCD_IMAGE_TAG, coredns $COREDNS_VERSION, pause $PAUSE_VERSION)"
for c in kube-apiserver kube-controller-manager kube-scheduler kube-proxy; do
  component "$c" "$K8S_VERSION" "$c"
done
component etcd "$ETCD_IMAGE_TAG" etcd
component coredns "$COREDNS_VERSION" coredns /coredns
component pause "$PAUSE_VERSION" pause /pause
# kube-proxy drives the kernel through nft (nftables mode), iptables, or
# IPVS (sealos' default where the kernel has it) with iptables and ipset.
kp=$STAGE/components/kube-proxy
copy_with_libs "$kp" "$(command -v nft)" "$(command -v ipset)" /usr/sbin/xtables-nft-multi /usr/sbin/xtables-legacy-multi
mkdir -p "$kp/usr/lib/x86_64-linux-gnu"
cp -a /usr/lib/x86_64-linux-gnu/xtables "$kp/usr/lib/x86_64-linux-gnu/"
for t in iptables iptables-save iptables-restore ip6tables ip6tables-save ip6tables-restore; do
  ln -sf /usr/sbin/xtables-nft-multi "$kp/usr/sbin/$t"
  ln -sf /usr/sbin/xtables-legacy-multi "$kp/usr/sbin/${t/tables/tables-legacy}"
done
# nft names protocols and ports through these files. Without them `nft
# --json` lists a service map key as `10.96.0.10 . 17 . 53`, kube-proxy
# (nftables mode) no longer recognises the `udp` elements it wrote, and at
# every restart deletes every ClusterIP's map entry as a leftover: the
# node's Services refuse connections until its next full resync (seen as a
# 75 s Service outage while kubeadm's addon phase rolled kube-proxy).
mkdir -p "$kp/etc"
for f in /etc/protocols /etc/services; do
  [ -s "$f" ] || { echo "build-image: $f is missing (Debian package netbase); kube-proxy's nft needs it" >&2; exit 1; }
  cp "$f" "$kp/etc/"
done
# busybox: test workloads; bridge-cni: the pod network's DaemonSet.
bb=$STAGE/components/busybox
mkdir -p "$bb/bin" "$bb/tmp" && chmod 1777 "$bb/tmp"
install -m 0755 "$(readlink -f "$(command -v busybox)")" "$bb/bin/busybox"
for a in $("$bb/bin/busybox" --list); do [ "$a" = busybox ] || ln -sf busybox "$bb/bin/$a"; done
printf 'FROM scratch\nCOPY . /\nENV PATH=/bin\nCMD ["sh"]\n' >"$bb/Kubefile"
cni=$STAGE/components/bridge-cni
mkdir -p "$cni/cni" "$cni/usr/local/bin"
cp -a "$bb/bin" "$cni/bin"
install -m 0755 "$BIN/kubectl" "$cni/usr/local/bin/kubectl"
install -m 0755 "$here/cni/daemon/ferry-bridge-cni" "$cni/usr/local/bin/ferry-bridge-cni"
for p in bridge host-local loopback portmap; do install -m 0755 "/usr/lib/cni/$p" "$cni/cni/$p"; done
printf 'FROM scratch\nCOPY . /\nENV PATH=/usr/local/bin:/bin\nENTRYPOINT ["/usr/local/bin/ferry-bridge-cni"]\n' >"$cni/Kubefile"

build() { # NAME CONTEXT
  step "ferry build -t $1"
  "$FERRY" build --compression zstd -t "$1" "$2" >&2
}
images=(
  "$REG/kube-apiserver:$K8S_VERSION kube-apiserver" "$REG/kube-controller-manager:$K8S_VERSION kube-controller-manager"
  "$REG/kube-scheduler:$K8S_VERSION kube-scheduler" "$REG/kube-proxy:$K8S_VERSION kube-proxy"
  "$REG/etcd:$ETCD_IMAGE_TAG etcd" "$REG/coredns:$COREDNS_VERSION coredns" "$REG/pause:$PAUSE_VERSION pause"
  "$REG/ferry/busybox:1 busybox" "$REG/ferry/bridge-cni:v1 bridge-cni"
)
for pair in "${images[@]}"; do
  build "${pair% *}" "$STAGE/components/${pair#* }"
done

# The rootfs cluster image.
k=$STAGE/kubernetes
cp -a "$here/kubernetes" "$k"
sed -i -e "s/@KUBE_VERSION@/$K8S_VERSION/" -e "s/@PAUSE_VERSION@/$PAUSE_VERSION/" "$k/Kubefile"
mkdir -p "$k/bin" "$k/cri" "$k/images/shim"
for b in kubeadm kubelet kubectl crictl; do install -m 0755 "$BIN/$b" "$k/bin/$b"; done
for b in containerd containerd-shim-runc-v2 ctr runc; do
  install -m 0755 "$(readlink -f "$(command -v "$b" || echo "/usr/sbin/$b")")" "$k/cri/$b"
done
install -m 0755 "$(command -v docker-registry)" "$k/cri/registry"
for pair in "${images[@]}"; do
  case ${pair#* } in busybox | bridge-cni) continue ;; esac
  echo "${pair% *}"
done >"$k/images/shim/DefaultImageList"
build "localhost/ferry/kubernetes:$K8S_VERSION" "$k"

# The pod network (application image) with its images and the test workload's.
n=$STAGE/network
cp -a "$here/cni" "$n"
rm -rf "$n/daemon"
printf '%s\n' "$REG/ferry/bridge-cni:v1" "$REG/ferry/busybox:1" >"$n/images/shim/bridge-cni"
build "localhost/ferry/network:v1" "$n"

# helm as labring/helm ships it: opt/helm, installed on master0 by its CMD.
h=$STAGE/helm
cp -a "$here/helm" "$h"
install -D -m 0755 "$HELM" "$h/opt/helm"
build "localhost/ferry/helm:$HELM_VERSION" "$h"

# Two chart apps in labring's layout: the chart ../charts/hello as
# charts/<app>, images/shim naming the busybox image (collected into
# registry/), the canonical CMD with the app's own NAME/NAMESPACE/CHARTS/
# HELM_OPTS.
for app in hello-a hello-b; do
  a=$STAGE/$app
  cp -a "$here/charts/$app" "$a"
  mkdir -p "$a/charts"
  cp -a "$here/charts/hello" "$a/charts/$app"
  sed -i "s/^name: hello\$/name: $app/" "$a/charts/$app/Chart.yaml"
  "$HELM" template "$app" "$a/charts/$app" >/dev/null ||
    { echo "build-image: helm template of $a/charts/$app failed (see above; fix packaging/real/charts/hello)" >&2; exit 1; }
  build "localhost/ferry/$app:v1" "$a"
done
echo "localhost/ferry/kubernetes:$K8S_VERSION"
echo "localhost/ferry/network:v1"
echo "localhost/ferry/helm:$HELM_VERSION"
echo "localhost/ferry/hello-a:v1"
echo "localhost/ferry/hello-b:v1"
