#!/usr/bin/env bash
# End-to-end test of the Linux GPIO backend on a real kernel GPIO driver, under emulation.
#
#   image/test-gpio.sh [--bin PATH] [--refresh] [--timeout SECONDS] [--keep]
#
# QEMU's `-M virt` machine has an ARM PL061 GPIO controller (8 lines) that Debian's arm64
# kernel drives with its built-in gpio-pl061 driver and shows as /dev/gpiochip0. Line 3 is
# wired by QEMU to the power key: `system_powerdown` on QEMU's monitor holds it high for
# 100 ms (the kernel's gpio-keys driver, a module, is not loaded, so the line is free).
#
# The script
# 1. fetches Debian bookworm's arm64 kernel (linux-image-arm64's current version) and
#    busybox-static:arm64 with apt-get download, through a private apt configuration (the
#    host's dpkg architectures and apt state are not touched);
# 2. builds the aarch64 release binary (`cargo pi-build`) unless --bin is given;
# 3. builds an initramfs: busybox, the binary with its dynamic loader and libraries from
#    /usr/aarch64-linux-gnu, and an /init that mounts devtmpfs, proc and sysfs, writes a
#    board file (LEDs on lines 0, 1, 2 with amber active-low; button on line 3), runs
#    `letterbox debug-gpio --cycle` (each LED on and off, read back through CdevPin), checks
#    the button reads released, waits for a button press, prints a result marker and powers
#    off;
# 4. boots it with qemu-system-aarch64 -M virt -cpu cortex-a72 (no network: -nic none),
#    presses the button through the monitor when the binary waits for it, and checks the
#    serial output. qemu runs under `timeout`, and an EXIT trap kills it: no qemu is left.
#    The wait for the guest ends at once when qemu has exited; a failure then shows qemu's
#    own output (an option it refused, a missing file) beside the serial log.
#
# No option ROM or firmware is needed: -kernel boot, and no network device (-nic none), so
# the ROMs of ipxe-qemu (a Recommends of qemu-system-arm) are not used.
# Needs (installed if missing, as root): qemu-system-arm, cpio, gzip, binutils-aarch64-linux-gnu.
# Downloads are cached in ${LETTERBOX_CACHE:-~/.cache/letterbox}/test-gpio (--refresh: again).
set -euo pipefail
cd "$(dirname "$0")/.."

MIRROR=${DEBIAN_MIRROR:-http://deb.debian.org/debian}
SECURITY_MIRROR=${DEBIAN_SECURITY_MIRROR:-http://deb.debian.org/debian-security}
CACHE=${LETTERBOX_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/letterbox}/test-gpio
SYSROOT=/usr/aarch64-linux-gnu
BOOT_TIMEOUT=300
bin=
refresh=0
keep=0
while (($#)); do
  case "$1" in
    --bin) bin=$2; shift 2 ;;
    --refresh) refresh=1; shift ;;
    --timeout) BOOT_TIMEOUT=$2; shift 2 ;;
    --keep) keep=1; shift ;;
    -h | --help) sed -n '2,33p' "$0"; exit 0 ;;
    *) echo "test-gpio.sh: unknown argument $1" >&2; exit 2 ;;
  esac
done

t0=$SECONDS
say() { printf '==> [%3d s] %s\n' $((SECONDS - t0)) "$*"; }

WORK=$(mktemp -d /tmp/letterbox-test-gpio.XXXXXX)
QEMU_PID=
READER_PID=
cleanup() {
  local rc=$?
  for pid in $QEMU_PID $READER_PID; do
    if kill -0 "$pid" 2>/dev/null; then
      kill "$pid" 2>/dev/null || true
      sleep 0.5
      kill -9 "$pid" 2>/dev/null || true
    fi
  done
  wait 2>/dev/null || true
  if ((keep)); then
    echo "test-gpio.sh: kept $WORK"
  else
    rm -rf "$WORK"
  fi
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# --- host tools ------------------------------------------------------------------------
need=()
command -v qemu-system-aarch64 >/dev/null || need+=(qemu-system-arm)
command -v cpio >/dev/null || need+=(cpio)
command -v gzip >/dev/null || need+=(gzip)
command -v aarch64-linux-gnu-readelf >/dev/null || need+=(binutils-aarch64-linux-gnu)
[[ -e $SYSROOT/lib/ld-linux-aarch64.so.1 ]] || need+=(libc6-arm64-cross)
if ((${#need[@]})); then
  say "installing ${need[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${need[@]}"
fi

# --- Debian arm64 packages, through a private apt configuration ------------------------
APT=$CACHE/apt
DEBS=$CACHE/debs
mkdir -p "$APT/state/lists/partial" "$APT/cache/archives/partial" "$APT/sources.list.d" \
  "$APT/preferences.d" "$DEBS"
touch "$APT/status"
cat >"$APT/sources.list" <<EOF
deb [arch=arm64 signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] $MIRROR bookworm main
deb [arch=arm64 signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] $SECURITY_MIRROR bookworm-security main
EOF
APT_OPTS=(
  -o "Dir::State=$APT/state" -o "Dir::State::status=$APT/status"
  -o "Dir::Cache=$APT/cache" -o "Dir::Etc::SourceList=$APT/sources.list"
  -o "Dir::Etc::SourceParts=$APT/sources.list.d" -o "Dir::Etc::Preferences=$APT/preferences"
  -o "Dir::Etc::PreferencesParts=$APT/preferences.d"
  -o APT::Architecture=arm64 -o APT::Architectures::=arm64 -o Debug::NoLocking=1
  -o APT::Sandbox::User=root
)
if ((refresh)) || ! compgen -G "$DEBS/linux-image-*-arm64_*.deb" >/dev/null ||
  ! compgen -G "$DEBS/busybox-static_*.deb" >/dev/null; then
  say "apt-get update (arm64, private state in $APT)"
  timeout 300 apt-get "${APT_OPTS[@]}" -qq update
  kpkg=$(apt-cache "${APT_OPTS[@]}" depends linux-image-arm64 |
    sed -n 's/^ *Depends: \(linux-image-[0-9].*-arm64\)$/\1/p' | head -n1)
  [[ -n "$kpkg" ]] || { echo "test-gpio.sh: cannot resolve linux-image-arm64" >&2; exit 1; }
  say "apt-get download $kpkg busybox-static"
  rm -f "$DEBS"/*.deb
  (cd "$DEBS" && timeout 600 apt-get "${APT_OPTS[@]}" -qq download "$kpkg" busybox-static)
fi
kdeb=$(compgen -G "$DEBS/linux-image-*-arm64_*.deb" | head -n1)
bdeb=$(compgen -G "$DEBS/busybox-static_*.deb" | head -n1)
say "kernel package: $(basename "$kdeb")"

# The kernel and busybox, unpacked once per package version.
KDIR=$CACHE/unpacked/$(basename "$kdeb" .deb)
if [[ ! -e "$KDIR/done" ]]; then
  rm -rf "$KDIR"
  mkdir -p "$KDIR"
  dpkg-deb --fsys-tarfile "$kdeb" | tar -x -C "$KDIR" --wildcards './boot/*'
  touch "$KDIR/done"
fi
mkdir -p "$WORK/busybox"
dpkg-deb -x "$bdeb" "$WORK/busybox"
vmlinuz=$(compgen -G "$KDIR/boot/vmlinuz-*" | head -n1)
kconfig=$(compgen -G "$KDIR/boot/config-*" | head -n1)
for opt in CONFIG_GPIO_PL061 CONFIG_GPIO_CDEV CONFIG_GPIO_CDEV_V1 CONFIG_DEVTMPFS CONFIG_SERIAL_AMBA_PL011_CONSOLE; do
  grep -qx "$opt=y" "$kconfig" || {
    echo "test-gpio.sh: $(basename "$kconfig") lacks $opt=y; this test needs it built in" >&2
    exit 1
  }
done

# --- the binary --------------------------------------------------------------------------
if [[ -z "$bin" ]]; then
  say "cargo pi-build"
  cargo pi-build
  bin=${CARGO_TARGET_DIR:-target}/aarch64-unknown-linux-gnu/release/letterbox
fi
[[ -x "$bin" ]] || { echo "test-gpio.sh: no binary at $bin" >&2; exit 1; }

# --- initramfs ---------------------------------------------------------------------------
say "initramfs"
R=$WORK/root
mkdir -p "$R/bin" "$R/lib" "$R/dev" "$R/proc" "$R/sys" "$R/tmp"
cp "$WORK/busybox/bin/busybox" "$R/bin/busybox"
ln -s busybox "$R/bin/sh"
cp "$bin" "$R/bin/letterbox"
# The dynamic loader and the libraries the binary needs (and theirs), from the cross sysroot.
interp=$(aarch64-linux-gnu-readelf -l "$bin" | sed -n 's/.*program interpreter: \(.*\)]$/\1/p')
if [[ -n "$interp" ]]; then
  mkdir -p "$R$(dirname "$interp")"
  cp -L "$SYSROOT/lib/$(basename "$interp")" "$R$interp"
fi
todo=("$bin")
declare -A seen=()
while ((${#todo[@]})); do
  f=${todo[0]}
  todo=("${todo[@]:1}")
  for lib in $(aarch64-linux-gnu-readelf -d "$f" | sed -n 's/.*Shared library: \[\(.*\)\]/\1/p'); do
    [[ -n "${seen[$lib]:-}" ]] && continue
    seen[$lib]=1
    src=$SYSROOT/lib/$lib
    [[ -e "$src" ]] || { echo "test-gpio.sh: $lib not in $SYSROOT/lib" >&2; exit 1; }
    cp -L "$src" "$R/lib/$lib"
    todo+=("$src")
  done
done
cat >"$R/init" <<'EOF'
#!/bin/sh
/bin/busybox --install -s /bin
export PATH=/bin
mount -t devtmpfs devtmpfs /dev
mount -t proc proc /proc
mount -t sysfs sysfs /sys
echo "test-gpio: kernel $(uname -r) $(uname -m)"
for c in /sys/class/gpio/gpiochip*; do
  echo "test-gpio: $(basename "$c") label=$(cat "$c/label") ngpio=$(cat "$c/ngpio")"
done
ls -l /dev/gpiochip* || true
# The PL061 of -M virt: LEDs on lines 0, 1, 2 (amber active-low, to check the polarity
# path); the button on line 3, which QEMU's power key drives high while pressed.
cat >/tmp/qemu-virt.toml <<'BOARD'
chip = "/dev/gpiochip0"
[green]
line = 0
[amber]
line = 1
active_low = true
[red]
line = 2
[button]
line = 3
active_low = false
pull = "none"
BOARD
/bin/letterbox debug-gpio --board /tmp/qemu-virt.toml --cycle --rounds 3 \
  --expect-button released --wait-press 60
rc=$?
# Negative checks: the test must be able to fail. A button expected pressed that reads
# released fails with 1; a line the chip does not have (the PL061 has lines 0-7) is
# refused at open with 2. Their output is prefixed so it is not counted above.
out=$(/bin/letterbox debug-gpio --board /tmp/qemu-virt.toml --expect-button pressed 2>&1)
neg=$?
echo "$out" | sed 's/^/neg1: /'
sed 's/^line = 2$/line = 8/' /tmp/qemu-virt.toml >/tmp/bad-line.toml
out=$(/bin/letterbox debug-gpio --board /tmp/bad-line.toml --cycle 2>&1)
neg="$neg $?"
echo "$out" | sed 's/^/neg2: /'
echo "TEST-GPIO-NEGATIVE rc=$neg"
echo "TEST-GPIO-RESULT rc=$rc"
poweroff -f
EOF
chmod +x "$R/init"
(cd "$R" && find . -print0 | cpio --null -o -H newc --quiet | gzip -1) >"$WORK/initrd.gz"
say "initramfs: $(du -h "$WORK/initrd.gz" | cut -f1)"

# --- boot ----------------------------------------------------------------------------------
LOG=$WORK/serial.log
QLOG=$WORK/qemu.log
MON=$WORK/monitor
mkfifo "$MON.in" "$MON.out"
: >"$LOG"
say "booting qemu-system-aarch64 -M virt (timeout ${BOOT_TIMEOUT} s)"
timeout -k 5 "$BOOT_TIMEOUT" qemu-system-aarch64 \
  -M virt -cpu cortex-a72 -smp 1 -m 512 \
  -display none -no-reboot -nic none \
  -kernel "$vmlinuz" -initrd "$WORK/initrd.gz" \
  -append "console=ttyAMA0 panic=-1 loglevel=4" \
  -serial "file:$LOG" -monitor "pipe:$MON" >"$QLOG" 2>&1 &
QEMU_PID=$!
cat "$MON.out" >"$WORK/monitor.log" &
READER_PID=$!

pressed=0
boot_start=$SECONDS
while kill -0 "$QEMU_PID" 2>/dev/null; do
  if ((!pressed)) && grep -q '^waiting for a button press' "$LOG"; then
    say "pressing the button (system_powerdown: line 3 high for 100 ms)"
    # Bounded: opening the FIFO would block if qemu had just exited.
    # shellcheck disable=SC2016 # $1 is expanded by the inner sh
    timeout 10 sh -c 'echo system_powerdown >"$1"' sh "$MON.in" || true
    pressed=1
  fi
  grep -q '^TEST-GPIO-RESULT' "$LOG" && break
  sleep 0.5
done
# After the marker the guest powers off; give it a few seconds.
marker=0
if grep -q '^TEST-GPIO-RESULT' "$LOG"; then marker=1; fi
for _ in $(seq 20); do kill -0 "$QEMU_PID" 2>/dev/null || break; sleep 0.5; done
qemu_rc=0
if kill -0 "$QEMU_PID" 2>/dev/null; then
  kill "$QEMU_PID" 2>/dev/null || true
fi
wait "$QEMU_PID" || qemu_rc=$?
QEMU_PID=
say "qemu exited ($qemu_rc) after $((SECONDS - boot_start)) s"
if ((!marker)); then
  # qemu ended before the guest printed its result: say so at once, with what qemu said.
  echo "test-gpio.sh: FAIL: qemu exited (status $qemu_rc$( ((qemu_rc != 124)) || echo ': its timeout of '"$BOOT_TIMEOUT"' s')) before the guest's result marker" >&2
  echo "---- qemu's output ----" >&2
  tail -n 30 "$QLOG" >&2
  echo "---- last 40 lines of the serial log ----" >&2
  tail -n 40 "$LOG" | tr -d '\r' >&2
  exit 1
fi

echo "---- serial output (test lines) ----"
grep -E '^(test-gpio:|board |ok  |FAIL|waiting for|debug-gpio:|neg[12]: |TEST-GPIO-|crw)' "$LOG" | tr -d '\r' || true
echo "------------------------------------"

fail() {
  echo "test-gpio.sh: FAIL: $*" >&2
  echo "---- last 40 lines of the serial log ----" >&2
  tail -n 40 "$LOG" >&2
  exit 1
}
grep -q '^TEST-GPIO-RESULT' "$LOG" || fail "no result marker (timeout $BOOT_TIMEOUT s or the guest crashed)"
grep -q '^TEST-GPIO-RESULT rc=0' "$LOG" || fail "debug-gpio failed"
# open, 3 rounds x 3 LEDs x on/off, the button level, the press: 21 passed checks, none failed.
oks=$(grep -c '^ok  ' "$LOG" || true)
grep -q '^FAIL' "$LOG" && fail "a check failed"
((oks == 21)) || fail "expected 21 passed checks (open, 18 LED, button level, press), saw $oks"
grep -q '^ok   button press: short press' "$LOG" || fail "no button press seen"
grep -q '^neg1: FAIL button (line 3): reads released (low), expected pressed' "$LOG" ||
  fail "the wrong button expectation was not reported"
grep -q '^neg2: FAIL open: cannot open red LED (line 8 of /dev/gpiochip0)' "$LOG" ||
  fail "a line the chip lacks was not refused"
grep -q '^TEST-GPIO-NEGATIVE rc=1 2' "$LOG" || fail "negative checks: wrong exit codes"
say "PASS: $oks checks on $(basename "$vmlinuz") PL061 in $((SECONDS - t0)) s"
