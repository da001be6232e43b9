#!/usr/bin/env bash
# The main job on an embedded default: a REAL Kubernetes cluster on a local
# sandbox of nodes. Builds (or takes from the cache) the real Kubernetes
# binaries from the Go module proxy (packaging/real/build-binaries.sh; the
# first build takes ~15 min on 2 cores and prints its progress), builds the
# labring-layout cluster image and the pod network image with `ferry build`
# (packaging/real/build-image.sh), brings up 3 namespaced nodes that can host
# a kubelet (testbed.sh up --kube: real sshd, own cgroups), then
# `ferry run`s both images on 1 master + 2 workers from a bastion namespace
# (agents pushed over SSH once, mTLS gRPC after) and ends with
# `kubectl get nodes -o wide` and the pods of kube-system.
#
#   bash packaging/sandbox.sh             # real cluster (sandbox stays up)
#   bash packaging/sandbox.sh --fixture   # quick look: fixture image, 3+2 nodes
#   bash packaging/sandbox.sh down        # tear the sandbox down
set -euo pipefail
cd "$(dirname "$0")/.."
NAME=${FERRY_SANDBOX_NAME:-sandbox}
TB=tests/testbed/testbed.sh
MODE=real
case "${1:-}" in
  down) exec bash "$TB" down --name "$NAME" ;;
  --fixture) MODE=fixture ;;
  "") ;;
  *) echo "usage: bash packaging/sandbox.sh [--fixture|down]" >&2; exit 2 ;;
esac
[ "$(id -u)" -eq 0 ] || { echo "sandbox: needs root (namespaces, mounts, bridge)" >&2; exit 1; }

bash packaging/setup.sh
bash packaging/build-agent.sh >/dev/null
cargo build -q -p ferry-coordinator --bin ferry
FERRY="$PWD/target/debug/ferry"
AGENT="$PWD/target/x86_64-unknown-linux-musl/agent/ferry-agent"
STATE=/run/ferry-testbed/$NAME
HOME_DIR=/var/lib/ferry-sandbox/$NAME
mkdir -p "$HOME_DIR"

ferry() {
  bash "$TB" bastion "$NAME" -- env -u FERRY_DATA_ROOT FERRY_HOME="$HOME_DIR" FERRY_SSH_PASSWD="$PW" FERRY_AGENT_BIN="$AGENT" "$FERRY" "$@"
}
up() { # N [--kube]
  bash "$TB" up "$@" --name "$NAME"
  mapfile -t IPS < <(python3 -c 'import json,sys; [print(n["ip"]) for n in json.load(open(sys.argv[1]))["nodes"]]' "$STATE/testbed.json")
  PW=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["passwords"]["root"])' "$STATE/testbed.json")
  rm -rf "$HOME_DIR/default" "$HOME_DIR/known_hosts"
}

if [ "$MODE" = fixture ]; then
  up 5
  IMAGE=localhost/ferry-fixture/kubernetes:v1.27.7
  echo "== ferry build -t $IMAGE (fixture cluster image, store $HOME_DIR/images)"
  env -u FERRY_DATA_ROOT FERRY_HOME="$HOME_DIR" FERRY_BIN="$FERRY" FERRY_IMAGE="$IMAGE" \
    bash packaging/fixtures/build-kubernetes.sh "$HOME_DIR/stage-fixture" >/dev/null
  echo "== ferry run $IMAGE --masters ${IPS[0]},${IPS[1]},${IPS[2]} --nodes ${IPS[3]},${IPS[4]}"
  ferry run "$IMAGE" --masters "${IPS[0]},${IPS[1]},${IPS[2]}" --nodes "${IPS[3]},${IPS[4]}" --known-hosts "$HOME_DIR/known_hosts"
  ferry exec -- hostname
  echo "Fixture sandbox up (kubeadm/kubelet are test fixtures). Tear down: bash packaging/sandbox.sh down"
  exit 0
fi

echo "== real Kubernetes binaries (cached by version under ${FERRY_REAL_CACHE:-/var/cache/ferry/real})"
bash packaging/real/build-binaries.sh
echo "== ferry build: control-plane images, the cluster image and the pod network (store $HOME_DIR/images)"
mapfile -t IMAGES < <(env -u FERRY_DATA_ROOT FERRY_HOME="$HOME_DIR" FERRY_BIN="$FERRY" \
  bash packaging/real/build-image.sh "${FERRY_K8S_VERSION:-v1.34.4}" "$HOME_DIR/stage" 2>/dev/null)
IMAGES=("${IMAGES[@]:0:2}")   # the cluster image and the pod network (helm and the chart apps follow)
up 3 --kube
echo "== ferry run ${IMAGES[*]} --masters ${IPS[0]} --nodes ${IPS[1]},${IPS[2]}"
ferry run "${IMAGES[@]}" --masters "${IPS[0]}" --nodes "${IPS[1]},${IPS[2]}" --known-hosts "$HOME_DIR/known_hosts"
kubectl_m0() { bash "$TB" exec "$NAME" node1 -- kubectl --kubeconfig /etc/kubernetes/admin.conf "$@"; }
echo "== waiting for every node to be Ready (up to 5 min)"
kubectl_m0 wait --for=condition=Ready node --all --timeout=300s >/dev/null
kubectl_m0 -n kube-system wait --for=condition=Ready pod --all --timeout=300s >/dev/null || true
echo "== kubectl get nodes -o wide"
kubectl_m0 get nodes -o wide
echo "== kubectl -n kube-system get pods -o wide"
kubectl_m0 -n kube-system get pods -o wide
cat <<TXT

The sandbox runs a real Kubernetes ${FERRY_K8S_VERSION:-v1.34.4} (cluster \`default\`: 1 master + 2 workers).
Clusterfile: $HOME_DIR/default/Clusterfile
Try:
  bash $TB exec $NAME node1 -- kubectl get pods -A
  bash $TB bastion $NAME -- env FERRY_HOME=$HOME_DIR $FERRY exec -- crictl ps
Tear it down with: bash packaging/sandbox.sh down
TXT
