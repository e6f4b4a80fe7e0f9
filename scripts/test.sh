#!/usr/bin/env bash
# The whole test suite, as CI runs it: formatting, lints, then every test —
# with the default features and without `legacy-fanout` (the phase-4 build) —
# against real PostgreSQL, Redis and RabbitMQ, installed from Debian's
# packages if missing and started on 127.0.0.1 for this run only.
set -euo pipefail
cd "$(dirname "$0")/.."

SERVICES_DIR="${SMAP_SERVICES_DIR:-/tmp/smap-identity-services}"

# Line tables only: readable backtraces at a fraction of the build time and disk.
export CARGO_PROFILE_DEV_DEBUG="${CARGO_PROFILE_DEV_DEBUG:-line-tables-only}"
export CARGO_TERM_COLOR="${CARGO_TERM_COLOR:-never}"

step() { printf '\n==> %s\n' "$*"; }

# Every `cargo test` run appends here; the summary at the end adds them up.
RESULTS="$(mktemp)"
cleanup() {
  rm -f "$RESULTS"
  bash scripts/services.sh down "$SERVICES_DIR" || true
  command -v epmd >/dev/null && epmd -kill >/dev/null 2>&1 || true
}
trap cleanup EXIT
run_tests() { cargo test "$@" 2>&1 | tee -a "$RESULTS"; }

step "cargo fmt --check"
cargo fmt --check

step "cargo clippy (default features)"
cargo clippy --all-targets -- -D warnings
step "cargo clippy (--no-default-features)"
cargo clippy --all-targets --no-default-features -- -D warnings

step "cargo doc (both feature sets; a broken or private intra-doc link fails)"
RUSTDOCFLAGS="-D warnings" cargo doc --no-deps --lib
RUSTDOCFLAGS="-D warnings" cargo doc --no-deps --lib --no-default-features

step "contracts: AsyncAPI and OpenSpec documents (pinned npm tools)"
bash scripts/contracts.sh

step "deployment files: kustomize overlays, kubernetes-validate, yamllint, alerts, compose (pinned tools)"
bash scripts/deploy.sh check

step "image: the Dockerfile's build stage on its .dockerignore context, offline"
bash scripts/image.sh check

step "servers: install what is missing, start PostgreSQL, Redis, RabbitMQ"
bash scripts/services.sh install
eval "$(bash scripts/services.sh up "$SERVICES_DIR")"
echo "REDIS_HOST=$REDIS_HOST REDIS_PORT=$REDIS_PORT AMQP_URL=$AMQP_URL DATABASE_URL=$DATABASE_URL"
# Tests that need a server fail, not skip, when its variable is missing.
export CI=true

step "cargo test (--no-default-features)"
run_tests --no-default-features
step "cargo test (default features)"
run_tests

# One closing line over all runs: "N passed, N failed".
awk '/^test result:/ { for (i = 1; i <= NF; i++) { if ($(i+1) ~ /^passed/) p += $i; if ($(i+1) ~ /^failed/) f += $i } }
     END { printf "\nsummary: %d passed, %d failed\n", p, f }' "$RESULTS"
