#!/usr/bin/env bash
# Runs every fuzz target in fuzz/ for SECONDS each (default 60) and prints, per target, the
# executions done and the crashes found. Exits non-zero if any target crashed (the input is
# left in fuzz/artifacts/<target>/; reproduce with `cargo +nightly fuzz run <target> <file>`).
#
#   scripts/fuzz.sh [SECONDS] [TARGET...]
#
# Needs the nightly toolchain (`rustup toolchain install nightly`) and cargo-fuzz (installed
# here when missing, at the pinned version). Seeds come from fuzz/corpus/<target> (committed,
# read-only here); what a run discovers goes to fuzz/corpus-local/<target> (ignored by git),
# which later runs start from. FUZZ_SANITIZER=address|none (default address).
#
# AddressSanitizer keeps no allocation stack traces here (ASAN_OPTIONS=malloc_context_size=0,
# unless ASAN_OPTIONS is set): it stores every distinct allocation stack for good, and through
# the async stacks of axum, hyper and rmcp those never stop appearing, so a long run's memory
# grew without bound (step_up_differential: 3.5 GiB after 6.2 million inputs, flat at 0.6 GiB
# without them), and the runs were faster without the unwinding (RELIABILITY.md, "Runs of
# 2026-11-30, later"). Errors are still caught and reported, without the "allocated by" stack; to get it,
# run the binary on the saved input with ASAN_OPTIONS unset.
set -euo pipefail
cd "$(dirname "$0")/.."

CARGO_FUZZ_VERSION=0.13.2
SECONDS_PER_TARGET="${1:-60}"
shift || true
ALL_TARGETS=(bearer jwt step_up_differential metadata_urls clerk_keys clerk_answers issuer_forms)
if [ "$#" -gt 0 ]; then TARGETS=("$@"); else TARGETS=("${ALL_TARGETS[@]}"); fi
SANITIZER="${FUZZ_SANITIZER:-address}"
export ASAN_OPTIONS="${ASAN_OPTIONS:-malloc_context_size=0}"

if ! rustup toolchain list 2>/dev/null | grep -q '^nightly'; then
  echo "fuzz.sh: the nightly toolchain is missing (cargo-fuzz needs it): rustup toolchain install nightly" >&2
  exit 1
fi
if ! cargo fuzz --version 2>/dev/null | grep -q "$CARGO_FUZZ_VERSION"; then
  echo "==> installing cargo-fuzz $CARGO_FUZZ_VERSION"
  cargo install cargo-fuzz --version "$CARGO_FUZZ_VERSION" --locked --force
fi

echo "==> building the fuzz targets (sanitizer: $SANITIZER)"
# One `cargo fuzz build` (no target name) builds every target in one cargo invocation.
if [ "$#" -eq 0 ]; then
  cargo +nightly fuzz build --sanitizer "$SANITIZER"
else
  for t in "${TARGETS[@]}"; do cargo +nightly fuzz build --sanitizer "$SANITIZER" "$t"; done
fi

failed=0
printf '%-22s %14s %10s %s\n' target executions exec/s findings
for t in "${TARGETS[@]}"; do
  mkdir -p "fuzz/corpus-local/$t" "fuzz/artifacts/$t"
  dict=()
  [ -f "fuzz/dict/$t.dict" ] && dict=("-dict=fuzz/dict/$t.dict")
  log="fuzz/artifacts/$t/last-run.log"
  before=$(find "fuzz/artifacts/$t" -name 'crash-*' -o -name 'oom-*' -o -name 'timeout-*' | wc -l)
  set +e
  cargo +nightly fuzz run --sanitizer "$SANITIZER" "$t" "fuzz/corpus-local/$t" "fuzz/corpus/$t" -- \
    -max_total_time="$SECONDS_PER_TARGET" -print_final_stats=1 -timeout=20 -rss_limit_mb=4096 \
    "${dict[@]}" >"$log" 2>&1
  status=$?
  set -e
  after=$(find "fuzz/artifacts/$t" -name 'crash-*' -o -name 'oom-*' -o -name 'timeout-*' | wc -l)
  runs=$(grep -o 'stat::number_of_executed_units: *[0-9]*' "$log" | grep -o '[0-9]*$' | tail -1)
  rate=$(grep -o 'stat::average_exec_per_sec: *[0-9]*' "$log" | grep -o '[0-9]*$' | tail -1)
  findings=$((after - before))
  if [ "$status" -ne 0 ] && [ "$findings" -eq 0 ]; then findings=1; fi
  printf '%-22s %14s %10s %s\n' "$t" "${runs:-?}" "${rate:-?}" "$findings"
  if [ "$findings" -ne 0 ]; then
    failed=1
    echo "---- $t: crash (log: $log)" >&2
    grep -E 'panicked|ERROR|SUMMARY|Test unit written|artifact_prefix' "$log" | cut -c1-300 | head -20 >&2
  fi
done
exit "$failed"
