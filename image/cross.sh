#!/usr/bin/env bash
# Cross build for the Raspberry Pi (aarch64), and its unit and end-to-end tests under qemu-user.
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
#    qemu-aarch64-static; then the end-to-end suites in E2E_TESTS below, whose aarch64
#    daemon runs under qemu-user through binfmt_misc (binfmt-support, from
#    qemu-user-static's dependencies, registers it; mounted here if needed).
# Prints the time each step took. Exit status: non-zero on the first failing step.
set -euo pipefail
cd "$(dirname "$0")/.."

TARGET=aarch64-unknown-linux-gnu
# The end-to-end suites that also run for aarch64: every protocol with real clients
# (swaks; mbsync and curl over IMAPS; fetchmail and curl over POP3S), the CLI
# and the boot-partition config. About 10 to 15 times slower under instruction emulation,
# so the crash, hostile-input, queue, verification and the long smtp and imap suites run on the
# host only (tests/imap.rs took 268 s and tests/smtp.rs 380 s under qemu-user on a loaded
# machine; the five below took 156 s).
E2E_TESTS=(cli boot_config smtp_swaks imap_clients pop3_clients import_export)
# import_export's kill -9 test imports fewer messages under emulation (still killed midway).
export LB_IMPORT_KILL_MESSAGES=3000
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

# shellcheck source=image/steps.sh
source image/steps.sh

if ((install)); then
  step "install: rustup target and Debian packages"
  rustup target list --installed | grep -qx "$TARGET" || rustup target add "$TARGET"
  PACKAGES=(gcc-aarch64-linux-gnu libc6-dev-arm64-cross qemu-user-static binfmt-support binutils-aarch64-linux-gnu)
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
# zstd-sys compiles the bundled C libzstd with the cross gcc.
export CC_aarch64_unknown_linux_gnu=${CC_aarch64_unknown_linux_gnu:-aarch64-linux-gnu-gcc}
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

  # The end-to-end tests start the aarch64 `letterbox` binary themselves, so the kernel
  # must hand it to qemu (binfmt_misc), and qemu must find the aarch64 loader and libc
  # (QEMU_LD_PREFIX, inherited by every process the tests start).
  step "end-to-end tests for $TARGET under qemu-user: ${E2E_TESTS[*]}"
  if [[ ! -e /proc/sys/fs/binfmt_misc/qemu-aarch64 ]]; then
    [[ -e /proc/sys/fs/binfmt_misc/register ]] ||
      mount -t binfmt_misc binfmt_misc /proc/sys/fs/binfmt_misc
    update-binfmts --enable qemu-aarch64 || update-binfmts --import qemu-aarch64 || true
  fi
  if [[ ! -e /proc/sys/fs/binfmt_misc/qemu-aarch64 ]]; then
    echo "cross.sh: binfmt_misc has no qemu-aarch64 entry; the end-to-end tests cannot run" >&2
    exit 1
  fi
  args=()
  for t in "${E2E_TESTS[@]}"; do args+=(--test "$t"); done
  QEMU_LD_PREFIX=/usr/aarch64-linux-gnu cargo test --locked --target "$TARGET" "${args[@]}"

  # Issue 15: the release binary backs up an encrypted store and verifies it (age's
  # scrypt, zstd's C code and redb on aarch64), under qemu-user.
  step "aarch64 backup + verify under qemu-user"
  bk=$(mktemp -d)
  printf '[server]\ndata_dir = "%s/data"\n' "$bk" >"$bk/letterbox.toml"
  echo "a passphrase for the test" >"$bk/pass"
  run() { QEMU_LD_PREFIX=/usr/aarch64-linux-gnu "$bin" "$@" --config "$bk/letterbox.toml"; }
  run debug-store-load --data-dir "$bk/data" --messages 200 --size 8192
  run backup "$bk/store.backup" --passphrase-file "$bk/pass"
  run backup --verify "$bk/store.backup" --passphrase-file "$bk/pass" | tee "$bk/verify.txt"
  grep -q ': OK: 1 accounts, 200 messages' "$bk/verify.txt"
  rm -rf "$bk"
fi
timings
