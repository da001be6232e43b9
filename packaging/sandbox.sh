#!/usr/bin/env bash
# The main job on an embedded default: bring up a local sandbox of 3 nodes
# (network+mount+UTS+PID namespaces, overlay roots, real sshd), push the
# ferry agent to them over SSH from a bastion namespace, then run `hostname`
# on every node through the agents (mTLS gRPC).
#
#   bash packaging/sandbox.sh          # up + install + exec (sandbox stays up)
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

bash "$TB" up 3 --name "$NAME"
STATE=/run/ferry-testbed/$NAME
mapfile -t IPS < <(python3 -c 'import json,sys; [print(n["ip"]) for n in json.load(open(sys.argv[1]))["nodes"]]' "$STATE/testbed.json")
PW=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["passwords"]["root"])' "$STATE/testbed.json")
HOME_DIR=$STATE/ferry-home
mkdir -p "$HOME_DIR"

ferry() {
  bash "$TB" bastion "$NAME" -- env FERRY_HOME="$HOME_DIR" FERRY_SSH_PASSWD="$PW" FERRY_AGENT_BIN="$AGENT" "$FERRY" "$@"
}

echo "== ferry agent install --masters ${IPS[0]} --nodes ${IPS[1]},${IPS[2]}"
ferry agent install --masters "${IPS[0]}" --nodes "${IPS[1]},${IPS[2]}" --known-hosts "$HOME_DIR/known_hosts"
echo "== ferry exec -- hostname"
ferry exec -- hostname
echo "== ferry agent status"
ferry agent status
cat <<TXT

The sandbox is up. Try:
  bash $TB bastion $NAME -- env FERRY_HOME=$HOME_DIR $FERRY exec -- uname -a
  bash $TB exec $NAME node1 -- ps -ef
Tear it down with: bash packaging/sandbox.sh down
TXT
