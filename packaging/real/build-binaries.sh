#!/usr/bin/env bash
# Builds the real Kubernetes binaries for the real tier and the sandbox from
# the Go module proxy, into a cache keyed by version:
#   $FERRY_REAL_CACHE/k8s-<version>/bin/{kubeadm,kubelet,kubectl,kube-apiserver,
#     kube-controller-manager,kube-scheduler,kube-proxy,etcd,coredns,crictl,pause}
# A warm run (binaries present and stamped) returns at once. GOMODCACHE is
# the Go default and is kept (a second version reuses most modules). The
# build cache is private to this build ($FERRY_REAL_CACHE/go-build,
# ~4.5 GB) and removed once the binaries are stamped, so the disk holds only
# what the tests use; a failed build keeps it for the retry. lib.sh has the
# cache root and the Go settings.
#
#   bash packaging/real/build-binaries.sh [K8S_VERSION]     (default v1.34.4)
#
# Versions of etcd, coredns, cri-tools and pause follow what that kubeadm
# deploys (its constants), read from the module itself.
set -euo pipefail
# shellcheck source=packaging/real/lib.sh
source "$(dirname "$0")/lib.sh"
K8S_VERSION="${1:-${FERRY_K8S_VERSION:-v1.34.4}}"
OUT="$REAL_CACHE/k8s-$K8S_VERSION"
exit_if_stamped "$OUT" "real binaries $K8S_VERSION"
go_env "$REAL_CACHE/go-build"
command -v go >/dev/null || { echo "build-binaries: go is not installed (needed to build Kubernetes $K8S_VERSION)" >&2; exit 1; }

step() { printf '[build %s] %s\n' "$(date +%T)" "$*"; }
minor="${K8S_VERSION#v}"; major="${minor%%.*}"; minor="${minor#*.}"; minor="${minor%%.*}"
staging_version="v0.${minor}.${K8S_VERSION##*.}"
mkdir -p "$OUT/bin" "$OUT/work"
start=$(date +%s)

# --- Kubernetes: a wrapper module mapping each staging module to its release.
step "fetching k8s.io/kubernetes@$K8S_VERSION"
W="$OUT/work/k8s"
mkdir -p "$W"
(cd "$W" && go mod download -json "k8s.io/kubernetes@$K8S_VERSION" >"$W/mod.json")
KDIR=$(sed -n 's/.*"Dir": "\(.*\)".*/\1/p' "$W/mod.json")
KMOD=$(sed -n 's/.*"GoMod": "\(.*\)".*/\1/p' "$W/mod.json")
{
  echo "module ferry.local/k8s-build"
  echo
  grep -E '^go [0-9]' "$KMOD"
  grep -E '^godebug ' "$KMOD" || true
  echo
  echo "require k8s.io/kubernetes $K8S_VERSION"
  echo
  grep -E '=> \./staging/src/' "$KMOD" | awk -v v="$staging_version" '{print "replace " $1 " => " $1 " " v}'
} >"$W/go.mod"
: >"$W/go.sum"
cat >"$W/tools.go" <<'GO'
//go:build tools

package tools
GO

cd "$W"
build_date=$(date -u +%Y-%m-%dT%H:%M:%SZ)
ld=""
for pkg in k8s.io/client-go/pkg/version k8s.io/component-base/version; do
  ld+=" -X '$pkg.gitVersion=$K8S_VERSION' -X '$pkg.gitMajor=$major' -X '$pkg.gitMinor=$minor'"
  ld+=" -X '$pkg.gitTreeState=clean' -X '$pkg.gitCommit=module-proxy' -X '$pkg.buildDate=$build_date'"
done
components=(kubeadm kubelet kubectl kube-apiserver kube-controller-manager kube-scheduler kube-proxy)
pkgs=()
for c in "${components[@]}"; do pkgs+=("k8s.io/kubernetes/cmd/$c"); done
step "building ${components[*]} (cold: tens of minutes on 2 cores; warm: seconds)"
go_build_progress build 250 "$OUT/work/go-build.log" -trimpath -ldflags "-s -w $ld" -o "$OUT/bin/" "${pkgs[@]}"

# --- The versions that kubeadm deploys.
const="$KDIR/cmd/kubeadm/app/constants/constants.go"
etcd_tag=$(awk -v m="$minor:" '$1==m {gsub(/[",]/,"",$2); print $2}' "$const")
[[ -n "$etcd_tag" ]] || etcd_tag=$(sed -n 's/.*DefaultEtcdVersion = "\(.*\)"/\1/p' "$const")
coredns_version=$(sed -n 's/.*CoreDNSVersion = "\(.*\)"/\1/p' "$const")
pause_version=$(sed -n 's/.*PauseVersion = "\(.*\)"/\1/p' "$const")
etcd_version="v${etcd_tag%-*}"

build_module() { # name module-version package
  local name=$1 modver=$2 pkg=$3 d="$OUT/work/$1"
  mkdir -p "$d"
  printf 'module ferry.local/%s-build\n\ngo 1.24\n' "$name" >"$d/go.mod"
  : >"$d/go.sum"
  (cd "$d" && go get "$modver" >/dev/null && go build -trimpath -ldflags "-s -w" -o "$OUT/bin/$name" "$pkg")
}
step "building etcd $etcd_version"
build_module etcd "go.etcd.io/etcd/server/v3@$etcd_version" go.etcd.io/etcd/server/v3
step "building coredns $coredns_version"
build_module coredns "github.com/coredns/coredns@$coredns_version" github.com/coredns/coredns
# crictl follows Kubernetes' minor; the module proxy does not serve every
# release (v1.35.0 is missing), and crictl speaks the stable CRI v1 API, so
# the previous minor stands in for a missing one.
crictl_version=""
for v in "v1.${minor}.0" "v1.$((minor - 1)).0"; do
  if (cd "$OUT/work" && go list -m -json "sigs.k8s.io/cri-tools@$v" >/dev/null 2>&1); then
    crictl_version=$v
    break
  fi
done
[[ -n "$crictl_version" ]] || { echo "build-binaries: no cri-tools v1.${minor}.0 or v1.$((minor - 1)).0 on the Go module proxy" >&2; exit 1; }
step "building crictl $crictl_version"
build_module crictl "sigs.k8s.io/cri-tools@$crictl_version" sigs.k8s.io/cri-tools/cmd/crictl

step "building pause $pause_version (build/pause/linux/pause.c)"
gcc -Os -static -DVERSION="v$pause_version-ferry" -o "$OUT/bin/pause" "$KDIR/build/pause/linux/pause.c"
strip "$OUT/bin/pause"

cat >"$OUT/versions.env" <<ENV
KUBERNETES_VERSION=$K8S_VERSION
ETCD_IMAGE_TAG=$etcd_tag
COREDNS_VERSION=$coredns_version
PAUSE_VERSION=$pause_version
CRICTL_VERSION=$crictl_version
ENV
rm -rf "$OUT/work"
stamp "$OUT"
step "done in $(( $(date +%s) - start )) s: $OUT/bin"
ls -la "$OUT/bin"
