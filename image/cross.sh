#!/usr/bin/env bash
# Cross build for the Raspberry Pi (aarch64) and the library's unit tests under qemu-user.
#
#   image/cross.sh [--no-install] [--no-tests]
#
# 1. installs what a bare Debian machine lacks (as root): the rustup target
#    aarch64-unknown-linux-gnu; Debian's gcc-aarch64-linux-gnu, libc6-dev-arm64-cross and
#    qemu-user-static (the linker and runner are set in .cargo/config.toml);
# 2. `cargo pi-build`: the release binary (fat LTO, stripped) at
#    $CARGO_TARGET_DIR/aarch64-unknown-linux-gnu/release/letterbox;
# 3. checks that the binary needs no glibc newer than Debian bookworm's 2.36;
# 4. `cargo test --lib --target aarch64-unknown-linux-gnu`: the unit tests, run by
#    qemu-aarch64-static.
# Prints the time each step took. Exit status: non-zero on the first failing step.
set -euo pipefail
cd "$(dirname "$0")/.."

TARGET=aarch64-unknown-linux-gnu
MAX_GLIBC=2.36
install=1
tests=1
for arg in "$@"; do
  case "$arg" in
    --no-install) install=0 ;;
    --no-tests) tests=0 ;;
    -h | --help)
      sed -n '2,16p' "$0"
      exit 0
      ;;
    *)
      echo "cross.sh: unknown argument $arg" >&2
      exit 2
      ;;
  esac
done

TIMES=()
step_start=0
step_name=
step() {
  step_end
  step_name="$*"
  step_start=$SECONDS
  printf '\n==> %s\n' "$step_name"
}
step_end() {
  if [[ -n "$step_name" ]]; then
    TIMES+=("$(printf '%5d s  %s' $((SECONDS - step_start)) "$step_name")")
  fi
  step_name=
}

if ((install)); then
  step "install: rustup target and Debian packages"
  rustup target list --installed | grep -qx "$TARGET" || rustup target add "$TARGET"
  PACKAGES=(gcc-aarch64-linux-gnu libc6-dev-arm64-cross qemu-user-static binutils-aarch64-linux-gnu)
  missing=()
  for p in "${PACKAGES[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
  done
  if ((${#missing[@]})); then
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends "${missing[@]}"
  fi
fi

step "cargo pi-build (release, $TARGET)"
cargo pi-build
target_dir=${CARGO_TARGET_DIR:-target}
bin="$target_dir/$TARGET/release/letterbox"
file "$bin" 2>/dev/null || true
printf 'size: %s bytes (%s)\n' "$(stat -c %s "$bin")" "$(du -h "$bin" | cut -f1)"

step "glibc symbol versions (must be <= $MAX_GLIBC for Debian bookworm)"
needed=$(aarch64-linux-gnu-objdump -T "$bin" | grep -o 'GLIBC_[0-9][0-9.]*' | sed 's/GLIBC_//' | sort -uV)
newest=$(tail -n1 <<<"$needed")
echo "glibc versions needed: $(tr '\n' ' ' <<<"$needed")"
if [[ "$(printf '%s\n%s\n' "$newest" "$MAX_GLIBC" | sort -V | tail -n1)" != "$MAX_GLIBC" ]]; then
  echo "cross.sh: the binary needs glibc $newest, newer than bookworm's $MAX_GLIBC" >&2
  exit 1
fi
echo "newest: GLIBC_$newest <= $MAX_GLIBC: ok"
readelf_interp=$(aarch64-linux-gnu-readelf -l "$bin" | sed -n 's/.*Requesting program interpreter: \(.*\)]/\1/p')
echo "interpreter: $readelf_interp; needed: $(aarch64-linux-gnu-readelf -d "$bin" | sed -n 's/.*Shared library: \[\(.*\)\]/\1/p' | tr '\n' ' ')"

if ((tests)); then
  step "cargo test --lib --target $TARGET (under qemu-aarch64-static)"
  cargo test --locked --lib --target "$TARGET"
fi
step_end

printf '\n==> timings\n'
printf '%s\n' "${TIMES[@]}"
