#!/usr/bin/env bash
# Bounded fuzzing, for CI or by hand: fuzz/run.sh [SECONDS]
#
# Builds every cargo-fuzz target in this directory, then runs each one for SECONDS
# (default 60) with one job, on a temporary copy of the committed corpus (fuzz/corpus/),
# so runs never grow the repository. Exits non-zero if any target crashes, fails an
# assertion, hangs (-timeout), or exceeds the memory limit; the reproducer is left in
# fuzz/artifacts/<target>/ (ignored by git) and the end of the log is printed.
#
# Needs a nightly toolchain (cargo-fuzz does) and installs cargo-fuzz if missing.
# Environment: FUZZ_TOOLCHAIN (default nightly), FUZZ_SANITIZER (default none: the
# crate is `#![deny(unsafe_code)]`, and without ASan builds are faster and runs about
# twice as fast; set `address` to hunt memory errors in dependencies' unsafe code).
set -euo pipefail

secs="${1:-60}"
case "$secs" in '' | *[!0-9]*)
  echo "usage: $0 [SECONDS]" >&2
  exit 2
  ;;
esac
toolchain="${FUZZ_TOOLCHAIN:-nightly}"
sanitizer="${FUZZ_SANITIZER:-none}"
fuzz_dir="$(cd "$(dirname "$0")" && pwd)"
cd "$fuzz_dir"

if ! cargo "+$toolchain" --version >/dev/null 2>&1; then
  rustup toolchain install "$toolchain" --profile minimal
fi
if ! cargo "+$toolchain" fuzz --version >/dev/null 2>&1; then
  cargo install cargo-fuzz --locked
fi

# -O without -a: debug assertions and overflow checks come from fuzz/Cargo.toml's profile.
build_flags=(-O -s "$sanitizer")
echo "==> building fuzz targets (${build_flags[*]})"
cargo "+$toolchain" fuzz build "${build_flags[@]}"

work="$(mktemp -d "${TMPDIR:-/tmp}/letterbox-fuzz.XXXXXX")"
trap 'rm -rf "$work"' EXIT

failed=()
for target in $(cargo "+$toolchain" fuzz list); do
  echo "==> $target: ${secs}s"
  mkdir -p "$work/$target/corpus" "artifacts/$target"
  if [ -d "corpus/$target" ]; then
    cp -R "corpus/$target/." "$work/$target/corpus/"
  fi
  before="$(find "artifacts/$target" -type f | wc -l)"
  rc=0
  # libFuzzer's -jobs mode writes the run's log to fuzz-0.log in the working directory.
  (cd "$work/$target" &&
    timeout "$((secs + 300))" cargo "+$toolchain" fuzz run --fuzz-dir "$fuzz_dir" \
      "${build_flags[@]}" "$target" "$work/$target/corpus" -- \
      -jobs=1 -max_total_time="$secs" -rss_limit_mb=1024 -timeout=30 \
      -print_final_stats=1 >"$work/$target/run.log" 2>&1) || rc=$?
  log="$work/$target/fuzz-0.log"
  [ -f "$log" ] || log="$work/$target/run.log"
  after="$(find "artifacts/$target" -type f | wc -l)"
  stats="$(grep -E '^#[0-9]+.*exec/s' "$log" | tail -n 1 || true)"
  echo "    ${stats:-no stats}"
  if [ "$rc" -ne 0 ] || [ "$after" -gt "$before" ]; then
    echo "!!! $target failed (exit $rc); artifacts in fuzz/artifacts/$target/:" >&2
    tail -n 60 "$log" >&2
    failed+=("$target")
  fi
done

if [ "${#failed[@]}" -gt 0 ]; then
  echo "==> FAILED: ${failed[*]}" >&2
  exit 1
fi
echo "==> all fuzz targets ran ${secs}s without a finding"
