#!/usr/bin/env bash
# Benchmarks on real servers: starts them like the test command, runs the
# benchmarks (release build) and prints their figures. Not part of CI.
# `scripts/bench.sh --bench identity` runs one of them.
set -euo pipefail
cd "$(dirname "$0")/.."
SERVICES_DIR="${SMAP_SERVICES_DIR:-/tmp/smap-identity-bench-services}"
trap 'bash scripts/services.sh down "$SERVICES_DIR" || true' EXIT
bash scripts/services.sh install
# smtp-sink (Postfix's SMTP benchmark sink, Debian package `postfix`) is the
# e-mail benchmark's sink. Installed with no configuration, and policy-rc.d
# keeps the package's init script from starting a system-wide Postfix.
if ! command -v smtp-sink >/dev/null; then
  echo '[bench] installing postfix (for smtp-sink)' >&2
  export DEBIAN_FRONTEND=noninteractive
  echo 'postfix postfix/main_mailer_type select No configuration' | debconf-set-selections
  apt-get update -qq
  printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d && chmod +x /usr/sbin/policy-rc.d
  apt-get install -y -qq --no-install-recommends postfix >/dev/null
  rm -f /usr/sbin/policy-rc.d
fi
eval "$(SMAP_TEST_REDIS_PORT=6391 SMAP_TEST_AMQP_PORT=5683 SMAP_TEST_PG_PORT=5443 bash scripts/services.sh up "$SERVICES_DIR")"
export SMAP_TEST_REDIS_PORT=6391 SMAP_TEST_AMQP_PORT=5683 SMAP_TEST_PG_PORT=5443
# The e-mail benchmark reports the CPU per e-mail of these servers too.
RABBITMQ_PID="$(pgrep -f "beam.smp.*$SERVICES_DIR" | head -n 1 || true)"
REDIS_PID="$(pgrep -f 'redis-server 127.0.0.1:6391' | head -n 1 || true)"
PIDS=()
[ -n "$RABBITMQ_PID" ] && PIDS+=("rabbitmq=$RABBITMQ_PID")
[ -n "$REDIS_PID" ] && PIDS+=("redis=$REDIS_PID")
export BENCH_EMAIL_PIDS="${BENCH_EMAIL_PIDS:-$(IFS=,; echo "${PIDS[*]}")}"
RUST_LOG="${RUST_LOG:-warn}" cargo bench "$@"
