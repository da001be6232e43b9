#!/usr/bin/env bash
# The main job on an embedded default: bring up a local sandbox of 5 nodes
# (network+mount+UTS+PID namespaces, overlay roots, real sshd), build the
# fixture cluster image (packaging/fixtures: labring/kubernetes layout, real
# registry, kubeadm/kubelet TEST FIXTURES) into the sandbox's image store
# with `ferry build`, then `ferry run` it by name on 3 masters + 2 nodes from
# a bastion namespace (agents pushed over SSH, mTLS gRPC) and run `hostname`
# on every node through the agents. Prints where the Clusterfile is.
#
#   bash packaging/sandbox.sh          # up + build + run (sandbox stays up)
#   bash packaging/sandbox.sh down     # tear the sandbox down
set -euo pipefail
cd "$(dirname "$0")/.."
NAME=${FERRY_SANDBOX_NAME:-sandbox}
TB=tests/testbed/testbed.sh

if [ "${1:-}" = "down" ]; then
  exec bash "$TB" down --name "$NAME"
fi
[ "$(id -u)" -eq 0 ] || { echo "sandbox: needs root (namespaces, mounts, bridge)" >&2; exit 1; }

bash packaging/setup.sh
bash packaging/build-agent.sh >/dev/null
cargo build -q -p ferry-coordinator --bin ferry
FERRY="$PWD/target/debug/ferry"
AGENT="$PWD/target/x86_64-unknown-linux-musl/agent/ferry-agent"

bash "$TB" up 5 --name "$NAME"
STATE=/run/ferry-testbed/$NAME
mapfile -t IPS < <(python3 -c 'import json,sys; [print(n["ip"]) for n in json.load(open(sys.argv[1]))["nodes"]]' "$STATE/testbed.json")
PW=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["passwords"]["root"])' "$STATE/testbed.json")
HOME_DIR=$STATE/ferry-home
mkdir -p "$HOME_DIR"

ferry() {
  bash "$TB" bastion "$NAME" -- env -u FERRY_DATA_ROOT FERRY_HOME="$HOME_DIR" FERRY_SSH_PASSWD="$PW" FERRY_AGENT_BIN="$AGENT" "$FERRY" "$@"
}

IMAGE=localhost/ferry-fixture/kubernetes:v1.27.7
MASTERS="${IPS[0]},${IPS[1]},${IPS[2]}"
NODES="${IPS[3]},${IPS[4]}"
echo "== ferry build -t $IMAGE (fixture cluster image, store $HOME_DIR/images)"
env -u FERRY_DATA_ROOT FERRY_HOME="$HOME_DIR" FERRY_BIN="$FERRY" FERRY_IMAGE="$IMAGE" \
  bash packaging/fixtures/build-kubernetes.sh "$STATE/kubernetes" >/dev/null
ferry images
echo "== ferry run $IMAGE --masters $MASTERS --nodes $NODES"
ferry run "$IMAGE" --masters "$MASTERS" --nodes "$NODES" --known-hosts "$HOME_DIR/known_hosts"
echo "== ferry exec -- hostname"
ferry exec -- hostname
echo "== ferry agent status"
ferry agent status
cat <<TXT

The sandbox is up with cluster \`default\` (3 masters + 2 nodes) from $IMAGE.
Clusterfile: $HOME_DIR/default/Clusterfile
Try:
  bash $TB bastion $NAME -- env FERRY_HOME=$HOME_DIR $FERRY exec -- uname -a
  bash $TB exec $NAME node1 -- ps -ef
Tear it down with: bash packaging/sandbox.sh down
TXT
