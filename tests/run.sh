#!/usr/bin/env bash
# Runs every ferry test: unit, in-process (agent on 127.0.0.1:0), testbed
# end-to-end tests (namespaced nodes with real sshd; needs root) and the real
# tier (real Kubernetes on --kube testbed nodes: tests/tests/e2e_real_*.rs).
# One build is shared by all tests: the static agent once, the workspace once,
# the real Kubernetes binaries once per version (cached; a cold build prints
# its progress and takes ~15 min on 2 cores, a warm one returns at once).
set -euo pipefail
cd "$(dirname "$0")/.."
bash packaging/setup.sh
bash packaging/build-agent.sh >/dev/null
if [ "$(id -u)" -eq 0 ]; then
  bash packaging/real/build-binaries.sh
  bash packaging/real/build-binaries.sh v1.35.4   # the upgrade's target
  bash packaging/real/build-helm.sh
fi
export FERRY_AGENT_BIN="$PWD/target/x86_64-unknown-linux-musl/agent/ferry-agent"
cargo build --workspace --bins
export FERRY_BIN="$PWD/target/debug/ferry"
if cargo nextest --version >/dev/null 2>&1; then
  cargo nextest run --workspace --no-fail-fast "$@"
else
  cargo test --workspace --no-fail-fast "$@"
fi
