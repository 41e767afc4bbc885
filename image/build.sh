#!/usr/bin/env bash
# Builds the flashable Raspberry Pi SD-card image of Letterbox from Debian's own arm64 packages.
#
#   image/build.sh [--bin PATH] [--rootfs-only] [--no-xz] [--refresh]
#
# Output: image/out/letterbox-<version>-rpi-arm64.img and .img.xz beside it.
#
# 1. host tools (as root, installed if missing): mmdebstrap, arch-test, qemu-user-static,
#    binfmt-support, mount, file, systemd (systemctl), dosfstools, mtools, e2fsprogs, fdisk,
#    xz-utils; binfmt_misc is mounted and qemu-aarch64 registered, so the arm64 maintainer
#    scripts run under emulation;
# 2. the root file system: mmdebstrap, Debian bookworm arm64, components main and
#    non-free-firmware, variant minbase, no Recommends, no docs/man pages/locales, with
#    linux-image-arm64, raspi-firmware, systemd, udev, dbus, systemd-networkd (DHCP),
#    avahi-daemon, openssh-server (off by default), ca-certificates, e2fsprogs,
#    cloud-guest-utils (growpart). update-initramfs is diverted during the install and run once
#    at the end (this halves the time under emulation). The result is a tarball cached in
#    image/out/cache/rootfs-<hash of the package list and hooks>.tar, and the downloaded .debs
#    in image/out/cache/debs, so a rebuild reuses both (--refresh: build the rootfs again);
# 3. the letterbox binary (`cargo pi-build` unless --bin is given; image/cross.sh builds the
#    same file) and the overlay image/rootfs/ are added on the host, the units are enabled and
#    timers that write to the card are masked with `systemctl --root`;
# 4. the partitions are assembled without loop mounts: sfdisk writes the table, the FAT boot
#    partition is made with mkfs.vfat and filled with mtools (firmware, kernel, initrd, DTBs,
#    config.txt with dtparam=watchdog=on, cmdline.txt, letterbox.toml), root and data are
#    made with `mkfs.ext4 -d`, and all three are copied into the image with dd;
# 5. xz -T0 compresses the image beside it.
#
# Layout (MBR, disk identifier 0x4c425831):
#   p1  FAT32 "LETTERBOX"  256 MiB  /boot/firmware (what a laptop sees when the card is inserted)
#   p2  ext4  "lbroot"     the root file system, sized to its content plus 25 % and 192 MiB
#   p3  ext4  "lbdata"     128 MiB, /var/lib/letterbox, grown to fill the card on first boot
# Prints the time of each step. Logs of mmdebstrap go to image/out/mmdebstrap.log.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD

MIRROR=${DEBIAN_MIRROR:-http://deb.debian.org/debian}
SECURITY_MIRROR=${DEBIAN_SECURITY_MIRROR:-http://deb.debian.org/debian-security}
OUT=$ROOT/image/out
CACHE=$OUT/cache
bin=
rootfs_only=0
do_xz=1
refresh=0
while (($#)); do
  case "$1" in
    --bin) bin=$2; shift 2 ;;
    --rootfs-only) rootfs_only=1; shift ;;
    --no-xz) do_xz=0; shift ;;
    --refresh) refresh=1; shift ;;
    -h | --help) sed -n '2,33p' "$0"; exit 0 ;;
    *) echo "build.sh: unknown argument $1" >&2; exit 2 ;;
  esac
done
if ((EUID != 0)); then
  echo "build.sh: run as root (mmdebstrap in root mode, binfmt_misc, file ownership)" >&2
  exit 1
fi

VERSION=$(sed -n 's/^version = "\(.*\)"$/\1/p' Cargo.toml | head -n1)
NAME=letterbox-$VERSION-rpi-arm64
IMG=$OUT/$NAME.img

# shellcheck source=image/steps.sh
source image/steps.sh

WORK=
cleanup() {
  local rc=$?
  if [[ -n "$WORK" && -d "$WORK" ]]; then rm -rf "$WORK"; fi
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# --- 1. host tools ----------------------------------------------------------------------------
step "host tools and binfmt_misc"
# Every command this script runs that a minimal Debian (debootstrap --variant=minbase) lacks.
# arch-test: mmdebstrap refuses a foreign architecture without it (a Recommends, which
# --no-install-recommends leaves out); mount: mmdebstrap's root mode and binfmt_misc; file:
# the aarch64 check of the binary; systemctl (systemd): `systemctl --root` on the root tree.
declare -A TOOL_PKG=(
  [mmdebstrap]=mmdebstrap [arch-test]=arch-test [qemu-aarch64-static]=qemu-user-static
  [update-binfmts]=binfmt-support [mount]=mount [file]=file [systemctl]=systemd
  [mkfs.vfat]=dosfstools [mcopy]=mtools [mkfs.ext4]=e2fsprogs [sfdisk]=fdisk [xz]=xz-utils
)
need=()
for t in "${!TOOL_PKG[@]}"; do command -v "$t" >/dev/null || need+=("${TOOL_PKG[$t]}"); done
[[ -e /usr/share/keyrings/debian-archive-keyring.gpg ]] || need+=(debian-archive-keyring)
if ((${#need[@]})); then
  echo "installing ${need[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${need[@]}"
fi
if [[ ! -e /proc/sys/fs/binfmt_misc/register ]]; then
  mount -t binfmt_misc binfmt_misc /proc/sys/fs/binfmt_misc
fi
if [[ ! -e /proc/sys/fs/binfmt_misc/qemu-aarch64 ]]; then
  update-binfmts --enable qemu-aarch64 || update-binfmts --import qemu-aarch64
fi
grep -q '^enabled' /proc/sys/fs/binfmt_misc/qemu-aarch64 || {
  echo "build.sh: qemu-aarch64 is not registered with binfmt_misc" >&2
  exit 1
}
mkfs.ext4 -V 2>&1 | sed -n 1p # sed, not head: head would close the pipe early (SIGPIPE under pipefail)

# --- 2. root file system (cached) -------------------------------------------------------------
PACKAGES=(
  linux-image-arm64 raspi-firmware initramfs-tools zstd
  systemd systemd-sysv udev dbus systemd-resolved systemd-timesyncd
  avahi-daemon openssh-server ca-certificates
  e2fsprogs dosfstools cloud-guest-utils fdisk iproute2 kmod netbase
)
# Diversions made after the Essential packages, before the rest: update-initramfs does nothing
# until the final customize hook runs it once. ("$1" is the chroot, expanded by mmdebstrap.)
# shellcheck disable=SC2016
ESSENTIAL_HOOK='set -e
chroot "$1" dpkg-divert --quiet --local --rename --divert /usr/sbin/update-initramfs.real --add /usr/sbin/update-initramfs
printf "#!/bin/sh\necho \"update-initramfs: deferred by the letterbox image build\" >&2\nexit 0\n" >"$1/usr/sbin/update-initramfs"
chmod 755 "$1/usr/sbin/update-initramfs"'
# shellcheck disable=SC2016
FINAL_HOOK='set -e
rm -f "$1/usr/sbin/update-initramfs"
chroot "$1" dpkg-divert --quiet --local --rename --remove /usr/sbin/update-initramfs
chroot "$1" update-initramfs -c -k all
rm -f "$1"/etc/ssh/ssh_host_*'
DPKG_OPTS=(
  'path-exclude=/usr/share/man/*' 'path-exclude=/usr/share/info/*'
  'path-exclude=/usr/share/doc/*' 'path-include=/usr/share/doc/*/copyright'
  'path-exclude=/usr/share/locale/*' 'path-include=/usr/share/locale/locale.alias'
  'path-exclude=/usr/share/lintian/*' 'path-exclude=/usr/share/bug/*'
)
SOURCES=(
  "deb $MIRROR bookworm main non-free-firmware"
  "deb $MIRROR bookworm-updates main non-free-firmware"
  "deb $SECURITY_MIRROR bookworm-security main non-free-firmware"
)
key=$(printf '%s\n' "${PACKAGES[@]}" "$ESSENTIAL_HOOK" "$FINAL_HOOK" "${DPKG_OPTS[@]}" "${SOURCES[@]}" |
  sha256sum | cut -c1-12)
ROOTFS_TAR=$CACHE/rootfs-$key.tar
mkdir -p "$CACHE/debs"
if ((refresh)) || [[ ! -s "$ROOTFS_TAR" ]]; then
  step "rootfs: mmdebstrap bookworm arm64 (${#PACKAGES[@]} packages + deps, under qemu-user)"
  dpkg_args=()
  for o in "${DPKG_OPTS[@]}"; do dpkg_args+=("--dpkgopt=$o"); done
  rm -f "$ROOTFS_TAR.part"
  # shellcheck disable=SC2016
  if ! mmdebstrap --mode=root --variant=minbase --architectures=arm64 \
    --components=main,non-free-firmware \
    --include="$(
      IFS=,
      echo "${PACKAGES[*]}"
    )" \
    "${dpkg_args[@]}" \
    --skip=essential/unlink \
    --setup-hook='mkdir -p "$1"/var/cache/apt/archives/' \
    --setup-hook="sync-in $CACHE/debs /var/cache/apt/archives/" \
    --essential-hook="$ESSENTIAL_HOOK" \
    --customize-hook="sync-out /var/cache/apt/archives $CACHE/debs" \
    --customize-hook="$FINAL_HOOK" \
    --format=tar \
    bookworm "$ROOTFS_TAR.part" "${SOURCES[@]}" >"$OUT/mmdebstrap.log" 2>&1; then
    echo "build.sh: mmdebstrap failed; the end of $OUT/mmdebstrap.log:" >&2
    tail -n 40 "$OUT/mmdebstrap.log" >&2
    exit 1
  fi
  mv "$ROOTFS_TAR.part" "$ROOTFS_TAR"
else
  step "rootfs: cached $ROOTFS_TAR"
fi
printf 'rootfs tarball: %s (%s); .deb cache: %s\n' "$ROOTFS_TAR" "$(du -h "$ROOTFS_TAR" | cut -f1)" \
  "$(du -sh "$CACHE/debs" | cut -f1)"
if ((rootfs_only)); then
  timings
  exit 0
fi

# --- 3. the binary and the overlay ------------------------------------------------------------
if [[ -z "$bin" ]]; then
  bin=${CARGO_TARGET_DIR:-target}/aarch64-unknown-linux-gnu/release/letterbox
  step "cargo pi-build (the aarch64 release binary)"
  cargo pi-build
fi
[[ -x "$bin" ]] || { echo "build.sh: no binary at $bin" >&2; exit 1; }
file -b "$bin" 2>/dev/null | grep -q 'ARM aarch64' || {
  echo "build.sh: $bin is not an aarch64 binary" >&2
  exit 1
}

step "root tree: unpack, binary, overlay, units"
WORK=$(mktemp -d "$OUT/work.XXXXXX")
R=$WORK/root
mkdir -p "$R"
tar -x -p --numeric-owner --xattrs --xattrs-include='*' -f "$ROOTFS_TAR" -C "$R"
install -m 755 "$bin" "$R/usr/bin/letterbox"
# The overlay, owned by root whoever checked the repository out.
cp -a --no-preserve=ownership image/rootfs/. "$R/"
install -d -m 755 "$R/etc/letterbox/board" "$R/var/lib/letterbox" "$R/boot/firmware"
install -m 644 board/*.toml "$R/etc/letterbox/board/"
ln -sfn /boot/firmware/letterbox.toml "$R/etc/letterbox/letterbox.toml"
# No identity baked into the image: a machine id and SSH host keys are made at first boot.
: >"$R/etc/machine-id"
rm -f "$R/var/lib/dbus/machine-id" "$R"/etc/ssh/ssh_host_*
# journald keeps its logs in RAM (Storage=volatile); no directory on the card invites it.
rm -rf "$R/var/log/journal"
# Units: letterbox and its helpers on; SSH off (letterbox-ssh-setup starts it when asked);
# timers and jobs that would write to the card masked; no first-boot prompts on the console.
systemctl --root="$R" enable letterbox.service letterbox-grow-data.service \
  letterbox-ssh-setup.service letterbox-hostname.service systemd-networkd.service \
  systemd-resolved.service systemd-timesyncd.service avahi-daemon.service \
  serial-getty@ttyAMA0.service 2>&1 | sed 's/^/  /'
systemctl --root="$R" disable ssh.service ssh.socket 2>&1 | sed 's/^/  /'
systemctl --root="$R" mask apt-daily.timer apt-daily-upgrade.timer apt-daily.service \
  apt-daily-upgrade.service man-db.timer man-db.service e2scrub_all.timer e2scrub_reap.service \
  fstrim.timer dpkg-db-backup.timer systemd-firstboot.service \
  systemd-networkd-wait-online.service 2>&1 | sed 's/^/  /'
# systemd-resolved's stub resolver for everything that reads /etc/resolv.conf.
ln -sfn ../run/systemd/resolve/stub-resolv.conf "$R/etc/resolv.conf"
# The boot partition's files: firmware, kernel, initrd, device trees, our config.txt,
# cmdline.txt and letterbox.toml. Debian's hook may have put versioned copies there.
B=$WORK/boot
mkdir -p "$B"
cp "$R"/usr/lib/raspi-firmware/* "$B/"
kver=$(basename "$(compgen -G "$R/lib/modules/*" | sort -V | tail -n1)")
cp "$R/boot/vmlinuz-$kver" "$B/vmlinuz"
cp "$R/boot/initrd.img-$kver" "$B/initrd.img"
cp "$R"/usr/lib/linux-image-"$kver"/broadcom/*.dtb "$B/"
cp image/rootfs/boot/firmware/config.txt image/rootfs/boot/firmware/cmdline.txt "$B/"
cp image/letterbox.toml "$B/letterbox.toml"
rm -rf "${R:?}/boot/firmware/"* "$R/usr/lib/raspi-firmware"/* 2>/dev/null || true
# The kernel and initrd stay in /boot for Debian's hooks; the firmware blobs are on the FAT only.
echo "kernel $kver; boot files: $(find "$B" -type f | wc -l), $(du -sh "$B" | cut -f1)"
printf 'root tree: %s\n' "$(du -sh "$R" | cut -f1)"

# --- 4. partitions and the image --------------------------------------------------------------
step "partitions: mkfs.vfat + mcopy, mkfs.ext4 -d, sfdisk"
MiB=1048576
BOOT_MIB=256
DATA_MIB=128
root_used=$(($(du -s --block-size=1M "$R" | cut -f1)))
ROOT_MIB=$(((root_used * 5 / 4 + 192 + 3) / 4 * 4))
START_MIB=4
IMG_MIB=$((START_MIB + BOOT_MIB + ROOT_MIB + DATA_MIB))
export MTOOLS_SKIP_CHECK=1
rm -f "$WORK/boot.vfat"
mkfs.vfat -F 32 -n LETTERBOX -C "$WORK/boot.vfat" $((BOOT_MIB * 1024)) >/dev/null
mcopy -i "$WORK/boot.vfat" -s -p -m "$B"/* ::/
mdir -i "$WORK/boot.vfat" -w ::/ | sed -n 1,20p
mkdir -p "$WORK/data"
mkfs.ext4 -q -F -L lbroot -b 4096 -m 1 -d "$R" "$WORK/root.ext4" "${ROOT_MIB}M"
mkfs.ext4 -q -F -L lbdata -b 4096 -m 1 -d "$WORK/data" "$WORK/data.ext4" "${DATA_MIB}M"
rm -f "$IMG" "$IMG.xz"
truncate -s "${IMG_MIB}M" "$IMG"
sect=$((MiB / 512))
sfdisk --quiet "$IMG" <<EOF
label: dos
label-id: 0x4c425831
unit: sectors
start=$((START_MIB * sect)), size=$((BOOT_MIB * sect)), type=c, bootable
start=$(((START_MIB + BOOT_MIB) * sect)), size=$((ROOT_MIB * sect)), type=83
start=$(((START_MIB + BOOT_MIB + ROOT_MIB) * sect)), size=$((DATA_MIB * sect)), type=83
EOF
dd if="$WORK/boot.vfat" of="$IMG" bs=1M seek=$START_MIB conv=notrunc,sparse status=none
dd if="$WORK/root.ext4" of="$IMG" bs=1M seek=$((START_MIB + BOOT_MIB)) conv=notrunc,sparse status=none
dd if="$WORK/data.ext4" of="$IMG" bs=1M seek=$((START_MIB + BOOT_MIB + ROOT_MIB)) conv=notrunc,sparse status=none
sfdisk --list "$IMG" | sed 's/^/  /'
printf 'image: %s: %d MiB (%s allocated)\n' "$IMG" "$IMG_MIB" "$(du -h "$IMG" | cut -f1)"
rm -rf "$WORK"
WORK=

# --- 5. xz ------------------------------------------------------------------------------------
if ((do_xz)); then
  step "xz -T0 (the .img.xz to flash)"
  xz -T0 -6 -k -f "$IMG"
  printf 'compressed: %s.xz: %s\n' "$IMG" "$(du -h --apparent-size "$IMG.xz" | cut -f1)"
fi
timings
printf '%5d s  total\n' "$SECONDS"
