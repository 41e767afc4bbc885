#!/usr/bin/env bash
# Bounded fuzzing, for CI or by hand: fuzz/run.sh [--update-corpus] [SECONDS] [TARGET...]
#
# Builds every cargo-fuzz target in this directory, then runs each one (or the TARGETs
# named) for SECONDS (default 60) with one job, on a temporary copy of the committed
# corpus (fuzz/corpus/), so runs never grow the repository. Exits non-zero if any target
# crashes, fails an assertion, hangs (-timeout), or exceeds the memory limit; the end of
# the log is printed, and each reproducer both stays in fuzz/artifacts/<target>/ (ignored
# by git) and is printed in base64 with the command that replays it, so a CI log is
# enough to reproduce a finding.
#
# --update-corpus (by hand): after each run, merge into fuzz/corpus/<target>/ only the
# new inputs that add coverage (libFuzzer -merge=1 keeps the committed seeds and adds a
# minimal set), then commit what you want to keep.
#
# Needs a nightly toolchain (cargo-fuzz does) and installs cargo-fuzz if missing.
# Environment: FUZZ_TOOLCHAIN (default nightly), FUZZ_SANITIZER (default none: the
# crate is `#![deny(unsafe_code)]`, and without ASan builds are faster and runs about
# twice as fast; set `address` to hunt memory errors in dependencies' unsafe code).
set -euo pipefail

update=0
if [ "${1:-}" = "--update-corpus" ]; then
  update=1
  shift
fi
secs="${1:-60}"
case "$secs" in '' | *[!0-9]*)
  echo "usage: $0 [--update-corpus] [SECONDS] [TARGET...]" >&2
  exit 2
  ;;
esac
shift || true
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
echo "==> $(cargo "+$toolchain" --version), $(cargo "+$toolchain" fuzz --version)"

# -O without -a: debug assertions and overflow checks come from fuzz/Cargo.toml's profile.
build_flags=(-O -s "$sanitizer")
echo "==> building fuzz targets (${build_flags[*]})"
cargo "+$toolchain" fuzz build "${build_flags[@]}"

work="$(mktemp -d "${TMPDIR:-/tmp}/letterbox-fuzz.XXXXXX")"
trap 'rm -rf "$work"' EXIT

targets=("$@")
if [ "${#targets[@]}" -eq 0 ]; then
  mapfile -t targets < <(cargo "+$toolchain" fuzz list)
fi

# Prints the reproducers a run left, in base64, with the command that replays each.
show_artifacts() {
  local target="$1" list="$2" f
  while IFS= read -r f; do
    [ -n "$f" ] || continue
    echo "--- reproducer fuzz/$f ($(wc -c <"$f") bytes, first 64 KiB), base64:" >&2
    head -c 65536 "$f" | base64 >&2
    echo "--- to replay: base64 -d > fuzz/$f (the lines above), then" >&2
    echo "    cd fuzz && cargo +$toolchain fuzz run ${build_flags[*]} $target $f" >&2
  done <"$list"
}

failed=()
for target in "${targets[@]}"; do
  echo "==> $target: ${secs}s"
  mkdir -p "$work/$target/corpus" "artifacts/$target"
  if [ -d "corpus/$target" ]; then
    cp -R "corpus/$target/." "$work/$target/corpus/"
  fi
  find "artifacts/$target" -type f | sort >"$work/$target/before"
  rc=0
  # libFuzzer's -jobs mode writes the run's log to fuzz-0.log in the working directory.
  (cd "$work/$target" &&
    timeout "$((secs + 300))" cargo "+$toolchain" fuzz run --fuzz-dir "$fuzz_dir" \
      "${build_flags[@]}" "$target" "$work/$target/corpus" -- \
      -jobs=1 -max_total_time="$secs" -rss_limit_mb=1024 -timeout=30 \
      -print_final_stats=1 >"$work/$target/run.log" 2>&1) || rc=$?
  log="$work/$target/fuzz-0.log"
  [ -f "$log" ] || log="$work/$target/run.log"
  find "artifacts/$target" -type f | sort >"$work/$target/after"
  comm -13 "$work/$target/before" "$work/$target/after" >"$work/$target/new"
  stats="$(grep -E '^#[0-9]+.*exec/s' "$log" | tail -n 1 || true)"
  echo "    ${stats:-no stats}"
  if [ "$rc" -ne 0 ] || [ -s "$work/$target/new" ]; then
    echo "!!! $target failed (exit $rc); artifacts in fuzz/artifacts/$target/:" >&2
    tail -n 60 "$log" >&2
    show_artifacts "$target" "$work/$target/new"
    failed+=("$target")
  elif [ "$update" = 1 ]; then
    mkdir -p "corpus/$target"
    n0="$(find "corpus/$target" -type f | wc -l)"
    cargo "+$toolchain" fuzz run --fuzz-dir "$fuzz_dir" "${build_flags[@]}" "$target" \
      "corpus/$target" "$work/$target/corpus" -- -merge=1 -rss_limit_mb=1024 \
      >"$work/$target/merge.log" 2>&1 || { tail -n 20 "$work/$target/merge.log" >&2; exit 1; }
    echo "    corpus/$target: $n0 -> $(find "corpus/$target" -type f | wc -l) files," \
      "$(find "corpus/$target" -type f -exec cat {} + | wc -c) bytes"
  fi
done

if [ "${#failed[@]}" -gt 0 ]; then
  echo "==> FAILED: ${failed[*]}" >&2
  exit 1
fi
echo "==> all fuzz targets ran ${secs}s without a finding"
