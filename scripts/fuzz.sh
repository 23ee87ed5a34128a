#!/usr/bin/env bash
# Builds the cargo-fuzz targets in fuzz/ once, then runs each for a bounded time.
# Fails on a crash, a broken property (the targets assert them), a hang (one input
# running longer than 10 s) or memory above 2 GiB, naming the input that did it.
#
#   scripts/fuzz.sh [TARGET...]      default: every target in fuzz/fuzz_targets/
#
#   FUZZ_SECONDS      seconds per target (default 30)
#   FUZZ_TARGET_DIR   cargo target dir of the fuzz build (default fuzz/target)
#
# Only the stable toolchain is needed: cargo-fuzz passes `-Z` flags, which stable
# rustc accepts with RUSTC_BOOTSTRAP=1, and `--sanitizer none` needs no nightly
# runtime. Coverage-guided search still works (SanitizerCoverage is an LLVM pass).
# New inputs libFuzzer finds go to fuzz/corpus-run/ (ignored by git); the
# committed seeds in fuzz/corpus/ are only read.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."

FUZZ_SECONDS="${FUZZ_SECONDS:-30}"
export CARGO_TARGET_DIR="${FUZZ_TARGET_DIR:-$PWD/fuzz/target}"
export RUSTC_BOOTSTRAP=1

if ! command -v cargo-fuzz >/dev/null 2>&1; then
  echo "installing cargo-fuzz (crates.io)"
  cargo install cargo-fuzz --locked
fi

targets=("$@")
if ((${#targets[@]} == 0)); then
  for f in fuzz/fuzz_targets/*.rs; do
    targets+=("$(basename "$f" .rs)")
  done
fi

started=$(date +%s)
cargo fuzz build --fuzz-dir fuzz --sanitizer none -O
built=$(date +%s)
echo "fuzz build: $((built - started)) s"

triple="$(rustc -vV | sed -n 's/^host: //p')"
bin_dir="$CARGO_TARGET_DIR/$triple/release"

summary=()
failed=()
for t in "${targets[@]}"; do
  [[ -x "$bin_dir/$t" ]] || { echo "scripts/fuzz.sh: no fuzz target $t in $bin_dir" >&2; exit 1; }
  mkdir -p "fuzz/corpus-run/$t" "fuzz/artifacts/$t"
  log="fuzz/artifacts/$t/last-run.log"
  echo "==> fuzz $t for ${FUZZ_SECONDS} s"
  status=0
  "$bin_dir/$t" "fuzz/corpus-run/$t" "fuzz/corpus/$t" \
    -max_total_time="$FUZZ_SECONDS" -timeout=10 -rss_limit_mb=2048 \
    -artifact_prefix="fuzz/artifacts/$t/" -print_final_stats=1 >"$log" 2>&1 || status=$?
  runs="$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -1)"
  cov="$(grep -o 'cov: [0-9]*' "$log" | tail -1 | sed 's/cov: //')"
  ft="$(grep -o 'ft: [0-9]*' "$log" | tail -1 | sed 's/ft: //')"
  summary+=("$(printf '%-22s %12s runs  cov %6s  ft %6s' "$t" "${runs:-?}" "${cov:-?}" "${ft:-?}")")
  if ((status != 0)); then
    tail -n 40 "$log" >&2
    failed+=("$t (exit $status; input in fuzz/artifacts/$t/, reproduce with: $bin_dir/$t fuzz/artifacts/$t/<file>)")
  fi
done

echo
echo "fuzzing summary (${FUZZ_SECONDS} s per target, build $((built - started)) s, total $(($(date +%s) - started)) s):"
printf '  %s\n' "${summary[@]}"
if ((${#failed[@]} > 0)); then
  printf 'scripts/fuzz.sh: FAILED %s\n' "${failed[@]}" >&2
  exit 1
fi
