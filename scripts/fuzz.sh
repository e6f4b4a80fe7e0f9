#!/usr/bin/env bash
# Coverage-guided fuzzing of the parsers (cargo-fuzz / libFuzzer), each target
# for a bounded time. Not part of CI (the property tests of tests/api/properties.rs
# are); run it before a release or after touching a parser:
#   scripts/fuzz.sh [SECONDS_PER_TARGET]   (default 60)
# Crashes are written to fuzz/artifacts/<target>/; the corpus grows in fuzz/corpus/.
set -euo pipefail
cd "$(dirname "$0")/../fuzz"
SECONDS_EACH="${1:-60}"
command -v cargo-fuzz >/dev/null || cargo install cargo-fuzz --locked
# cargo-fuzz passes nightly-only flags (sanitizers); the machine's one stable
# toolchain accepts them this way.
export RUSTC_BOOTSTRAP=1
for target in $(cargo fuzz list); do
  echo "==> $target for ${SECONDS_EACH}s"
  cargo fuzz run "$target" -- -max_total_time="$SECONDS_EACH" -rss_limit_mb=4096 2>&1 |
    grep -E "^#[0-9]+.*(DONE|pulse)|Done [0-9]+ runs|ERROR|panicked|SUMMARY" | tail -3
done
