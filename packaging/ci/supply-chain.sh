#!/usr/bin/env bash
# Supply-chain gates (docs/supply-chain.md): cargo deny on bans (duplicate
# major versions, wildcards), licenses and sources, always; then advisories
# (cargo deny advisories and cargo audit, yanked crates included) against
# the RustSec advisory database, when one is at hand:
#   FERRY_ADVISORY_DB=<a git checkout of the RustSec advisory-db>, or
#   its upstream repository answering within 20 s.
# Without either the advisory checks are skipped, and this says so loudly:
# CI machines reach only package registries. Exceptions live in deny.toml
# (advisory ignores are passed to cargo audit too).
set -euo pipefail
cd "$(dirname "$0")/../.."

DENY_VERSION=0.20.2
AUDIT_VERSION=0.22.2
ADVISORY_URL=https://github.com/rustsec/advisory-db
# cargo-deny keeps a database fetched from ADVISORY_URL under this name.
DENY_DB_NAME=advisory-db-3157b0e258782691

t0=$SECONDS
deny=$(bash packaging/ci/tool.sh cargo-deny "$DENY_VERSION")
# Crates of every target in the lock, so cargo deny can run --offline.
cargo fetch --locked -q
"$deny" --offline check bans licenses sources
echo "supply-chain: cargo deny bans licenses sources passed ($((SECONDS - t0)) s)"

db=${FERRY_ADVISORY_DB:-}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
if [ -z "$db" ]; then
  if timeout 20 git ls-remote -q "$ADVISORY_URL" HEAD >/dev/null 2>&1; then
    git clone -q --depth 1 "$ADVISORY_URL" "$tmp/db"
    db=$tmp/db
  else
    echo "supply-chain: ADVISORIES SKIPPED: the RustSec advisory database is not reachable" \
      "from this machine ($ADVISORY_URL did not answer in 20 s) and FERRY_ADVISORY_DB is" \
      "not set; cargo deny advisories and cargo audit did not run. Run them where it is:" \
      "FERRY_ADVISORY_DB=<checkout> bash packaging/ci/supply-chain.sh"
    exit 0
  fi
fi
if ! git -C "$db" rev-parse -q --verify HEAD >/dev/null; then
  echo "supply-chain: FERRY_ADVISORY_DB=$db is not a git checkout of the advisory database" >&2
  exit 1
fi
echo "supply-chain: advisory database $(git -C "$db" log -1 --format='%h of %cs' HEAD)"

t1=$SECONDS
mkdir -p "$tmp/deny-db"
ln -s "$(cd "$db" && pwd)" "$tmp/deny-db/$DENY_DB_NAME"
sed "s|^\[advisories\]|[advisories]\ndb-path = \"$tmp/deny-db\"|" deny.toml >"$tmp/deny.toml"
"$deny" --offline --config "$tmp/deny.toml" check advisories
echo "supply-chain: cargo deny advisories passed ($((SECONDS - t1)) s)"

t2=$SECONDS
# Without binary scanning (auditing built executables): not used here.
audit=$(bash packaging/ci/tool.sh cargo-audit "$AUDIT_VERSION" --no-default-features)
ignores=()
for id in $(grep -oE 'RUSTSEC-[0-9]{4}-[0-9]{4}' deny.toml | sort -u); do
  ignores+=(--ignore "$id")
done
"$audit" audit --no-fetch --db "$db" --deny yanked "${ignores[@]}"
echo "supply-chain: cargo audit passed ($((SECONDS - t2)) s; ignored: ${ignores[*]:-none})"
