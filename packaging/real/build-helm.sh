#!/usr/bin/env bash
# Builds helm for the real tier from the Go module proxy, into the cache
# build-binaries.sh uses, keyed by version:
#   $FERRY_REAL_CACHE/helm-<version>/bin/helm
# A warm run (binary present and stamped) returns at once. GOMODCACHE is the
# Go default and is kept (helm shares most k8s.io modules with Kubernetes);
# the build cache is private to this build ($OUT/go-build) and removed once
# the binary is stamped; a failed build keeps it for the retry.
#
#   bash packaging/real/build-helm.sh [HELM_VERSION]     (default v3.21.4)
#
# helm.sh/helm/v3/cmd/helm through a wrapper module (go get + go build, as
# build-binaries.sh builds etcd and coredns), with the ldflags of helm's own
# Makefile: version, tree state (the commit reads module-proxy: the proxy
# does not tell it), and the Kubernetes version
# that `helm template` and `helm lint` assume (from the client-go it builds
# with). CGO_ENABLED=0, -trimpath, -s -w.
set -euo pipefail
# shellcheck source=packaging/real/lib.sh
source "$(dirname "$0")/lib.sh"
HELM_VERSION="${1:-${FERRY_HELM_VERSION:-v3.21.4}}"
OUT="$REAL_CACHE/helm-$HELM_VERSION"
exit_if_stamped "$OUT" "helm $HELM_VERSION"
go_env "$OUT/go-build"
case "$HELM_VERSION" in
  v3.*) ;;
  *) echo "build-helm: '$HELM_VERSION' is not a helm v3 version (vX.Y.Z with X = 3; labring/helm is helm 3)" >&2; exit 1 ;;
esac
command -v go >/dev/null || { echo "build-helm: go is not installed (needed to build helm $HELM_VERSION)" >&2; exit 1; }

step() { printf '[helm %s] %s\n' "$(date +%T)" "$*"; }
start=$(date +%s)
W="$OUT/work"
mkdir -p "$OUT/bin" "$W"
printf 'module ferry.local/helm-build\n\ngo 1.24\n' >"$W/go.mod"
: >"$W/go.sum"
cd "$W"
step "fetching helm.sh/helm/v3@$HELM_VERSION"
if ! go get "helm.sh/helm/v3@$HELM_VERSION" >"$W/go-get.log" 2>&1; then
  echo "build-helm: go get helm.sh/helm/v3@$HELM_VERSION failed (is that version served by the Go module proxy? does it need a newer Go than $(go env GOVERSION)?); last lines:" >&2
  tail -n 20 "$W/go-get.log" >&2
  exit 1
fi
client_go=$(go list -m -f '{{.Version}}' k8s.io/client-go)   # v0.MINOR.PATCH
k8s_minor=${client_go#v0.}; k8s_minor=${k8s_minor%%.*}
ld="-s -w -X helm.sh/helm/v3/internal/version.version=$HELM_VERSION"
ld+=" -X helm.sh/helm/v3/internal/version.metadata="
ld+=" -X helm.sh/helm/v3/internal/version.gitCommit=module-proxy"
ld+=" -X helm.sh/helm/v3/internal/version.gitTreeState=clean"
for pkg in helm.sh/helm/v3/pkg/lint/rules helm.sh/helm/v3/pkg/chartutil; do
  ld+=" -X $pkg.k8sVersionMajor=1 -X $pkg.k8sVersionMinor=$k8s_minor"
done

step "building helm $HELM_VERSION (client-go $client_go; cold: minutes on 2 cores)"
go_build_progress helm 100 "$W/go-build.log" -trimpath -ldflags "$ld" -o "$OUT/bin/helm" helm.sh/helm/v3/cmd/helm
"$OUT/bin/helm" version --short >/dev/null ||
  { echo "build-helm: the built $OUT/bin/helm does not run ('helm version' failed)" >&2; exit 1; }

rm -rf "$W"
stamp "$OUT"
step "done in $(( $(date +%s) - start )) s: $OUT/bin/helm ($("$OUT/bin/helm" version --short))"
