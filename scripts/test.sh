#!/usr/bin/env bash
# The whole test suite, as CI runs it: formatting, lints, and every test,
# with the default features and without `legacy-fanout` (the phase-4 build).
set -euo pipefail
cd "$(dirname "$0")/.."

# Line tables only: readable backtraces at a fraction of the build time and disk.
export CARGO_PROFILE_DEV_DEBUG="${CARGO_PROFILE_DEV_DEBUG:-line-tables-only}"
export CARGO_TERM_COLOR="${CARGO_TERM_COLOR:-never}"

step() { printf '\n==> %s\n' "$*"; }

# Every `cargo test` run appends here; the summary at the end adds them up.
RESULTS="$(mktemp)"
trap 'rm -f "$RESULTS"' EXIT
run_tests() { cargo test "$@" 2>&1 | tee -a "$RESULTS"; }

step "cargo fmt --check"
cargo fmt --check

step "cargo clippy (default features)"
cargo clippy --all-targets -- -D warnings
step "cargo clippy (--no-default-features)"
cargo clippy --all-targets --no-default-features -- -D warnings

step "cargo test (--no-default-features)"
run_tests --no-default-features
step "cargo test (default features)"
run_tests

# One closing line over all runs: "N passed, N failed".
awk '/^test result:/ { for (i = 1; i <= NF; i++) { if ($(i+1) ~ /^passed/) p += $i; if ($(i+1) ~ /^failed/) f += $i } }
     END { printf "\nsummary: %d passed, %d failed\n", p, f }' "$RESULTS"
