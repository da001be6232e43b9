#!/usr/bin/env bash
# Runs every ferry test: unit, in-process (agent on 127.0.0.1:0), and testbed
# end-to-end tests (namespaced nodes with real sshd; needs root).
# One build is shared by all tests: the static agent once, the workspace once.
set -euo pipefail
cd "$(dirname "$0")/.."
bash packaging/setup.sh
bash packaging/build-agent.sh >/dev/null
export FERRY_AGENT_BIN="$PWD/target/x86_64-unknown-linux-musl/agent/ferry-agent"
cargo build --workspace --bins
export FERRY_BIN="$PWD/target/debug/ferry"
if cargo nextest --version >/dev/null 2>&1; then
  cargo nextest run --workspace --no-fail-fast "$@"
else
  cargo test --workspace --no-fail-fast "$@"
fi
