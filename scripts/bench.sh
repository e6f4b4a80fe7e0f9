#!/usr/bin/env bash
# Benchmarks on real servers: starts them like the test command, runs the
# benchmarks (release build) and prints their figures. Not part of CI.
# `scripts/bench.sh --bench identity` runs one of them.
set -euo pipefail
cd "$(dirname "$0")/.."
SERVICES_DIR="${SMAP_SERVICES_DIR:-/tmp/smap-identity-bench-services}"
trap 'bash scripts/services.sh down "$SERVICES_DIR" || true' EXIT
bash scripts/services.sh install
eval "$(SMAP_TEST_REDIS_PORT=6391 SMAP_TEST_AMQP_PORT=5683 SMAP_TEST_PG_PORT=5443 bash scripts/services.sh up "$SERVICES_DIR")"
export SMAP_TEST_REDIS_PORT=6391 SMAP_TEST_AMQP_PORT=5683 SMAP_TEST_PG_PORT=5443
RUST_LOG="${RUST_LOG:-warn}" cargo bench "$@"
