#!/usr/bin/env bash
# Boots the built SD-card image under QEMU and checks, from the host, that it serves mail.
#
#   image/test-boot.sh [--machine virt|raspi3b] [--image FILE] [--timeout SECONDS] [--keep]
#
# The image (default image/out/letterbox-<version>-rpi-arm64.img) is never changed: the test
# boots a sparse copy, grown to 2 GiB (a power of two, as -M raspi3b wants for its SD card) so
# that the first boot has room to grow the data partition. Before the boot it provisions
# through the boot partition, as a user would: a [[user]] with a password and [ssh] enabled
# with a freshly generated test key, written with mtools into the copy's letterbox.toml.
#
# --machine virt (default): qemu-system-aarch64 -M virt -cpu cortex-a72 -m 1024 with the
#   image's OWN kernel and initrd (taken from the boot partition with mtools), virtio disk and
#   network. Two cases:
#   1. first boot: waits for IMAPS; sends a message over submission (587, STARTTLS, AUTH),
#      reads it back over IMAPS and POP3S (python3; the self-signed certificate is not
#      verified); reads `letterbox status` over SSH; checks that the data partition grew, that
#      the plaintext password is gone from the boot partition's letterbox.toml, and powers off;
#   2. the same card with a mistake written into letterbox.toml: the box still boots, serves
#      on the appliance defaults (IMAPS login of the case-1 account), SSH stays as the last
#      good file set it, `letterbox status` shows fault 1, and after power-off
#      letterbox-error.txt is on the boot partition (read back with mtools).
# --machine raspi3b: -M raspi3b with the image's bcm2837-rpi-3-b.dtb, the card as the SD card
#   (root=/dev/mmcblk0p2), networking through an emulated USB CDC-ECM adapter (usb-net).
#   QEMU resets the machine as soon as bcm2835_wdt loads, so this test (only) blacklists it
#   on the kernel command line. Case 1 as above, plus: `[board] name = "auto"` resolves to
#   rpi3, and GPIO 17 (green) and 27 (amber: unseen mail) are lit and 22 (red) dark in
#   `letterbox status --json`, and read high, high and low in /sys/kernel/debug/gpio.
# --keep: after case 1, leave the machine running (ports and credentials printed) until ^C.
#
# Every mail port (25, 587, 465, 143, 993, 110, 995) and SSH are forwarded to free loopback
# ports. Every wait is bounded, and every wait for the guest (boot, IMAPS, SSH, power-off) ends
# at once when qemu has exited, with qemu's own output and the serial log. qemu runs under
# `timeout` and an EXIT trap kills it, so no qemu process is left behind. Serial logs:
# $WORK/serial-*.log, qemu's output $WORK/qemu-*.log (kept with --keep or on failure).
# Needs (installed if missing, as root): qemu-system-arm, mtools, openssh-client, python3, fdisk.
# No option ROM: the virtio NIC gets `romfile=` (a ROM only serves firmware network boot,
# and these boots are -kernel boots), so ipxe-qemu, a Recommends of qemu-system-arm that
# --no-install-recommends leaves out, is not needed.
set -euo pipefail
cd "$(dirname "$0")/.."

machine=virt
image=
keep=0
BOOT_TIMEOUT=
while (($#)); do
  case "$1" in
    --machine) machine=$2; shift 2 ;;
    --image) image=$2; shift 2 ;;
    --timeout) BOOT_TIMEOUT=$2; shift 2 ;;
    --keep) keep=1; shift ;;
    -h | --help) sed -n '2,42p' "$0"; exit 0 ;;
    *) echo "test-boot.sh: unknown argument $1" >&2; exit 2 ;;
  esac
done
case "$machine" in
  virt) : "${BOOT_TIMEOUT:=420}" ;;
  raspi3b) : "${BOOT_TIMEOUT:=720}" ;;
  *) echo "test-boot.sh: --machine virt or raspi3b" >&2; exit 2 ;;
esac
if [[ -z "$image" ]]; then
  version=$(sed -n 's/^version = "\(.*\)"$/\1/p' Cargo.toml | head -n1)
  image=image/out/letterbox-$version-rpi-arm64.img
fi
[[ -s "$image" ]] || { echo "test-boot.sh: no image at $image (run image/build.sh)" >&2; exit 1; }

t0=$SECONDS
say() { printf '==> [%4d s] %s\n' $((SECONDS - t0)) "$*"; }

WORK=$(mktemp -d /tmp/letterbox-test-boot.XXXXXX)
QEMU_PID=
failed=1
cleanup() {
  local rc=$?
  if [[ -n "$QEMU_PID" ]] && kill -0 "$QEMU_PID" 2>/dev/null; then
    kill "$QEMU_PID" 2>/dev/null || true
    for _ in 1 2 3 4 5 6 7 8 9 10; do kill -0 "$QEMU_PID" 2>/dev/null || break; sleep 0.5; done
    kill -9 "$QEMU_PID" 2>/dev/null || true
  fi
  wait 2>/dev/null || true
  if ((keep)) || ((failed)); then
    echo "test-boot.sh: logs kept in $WORK"
    rm -f "$WORK/disk.img"
  else
    rm -rf "$WORK"
  fi
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

need=()
command -v qemu-system-aarch64 >/dev/null || need+=(qemu-system-arm)
command -v mcopy >/dev/null || need+=(mtools)
command -v ssh >/dev/null || need+=(openssh-client)
command -v python3 >/dev/null || need+=(python3)
command -v sfdisk >/dev/null || need+=(fdisk)
if ((${#need[@]})); then
  say "installing ${need[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${need[@]}"
fi
export MTOOLS_SKIP_CHECK=1

# --- the card: a sparse 2 GiB copy ---------------------------------------------------------------
DISK=$WORK/disk.img
cp --sparse=always "$image" "$DISK"
truncate -s 2G "$DISK"
boot_off=$(($(sfdisk --json "$DISK" | python3 -c 'import json,sys; print(json.load(sys.stdin)["partitiontable"]["partitions"][0]["start"])') * 512))
FAT="$DISK@@$boot_off"
mcopy -n -i "$FAT" ::/vmlinuz ::/initrd.img "$WORK/"
if [[ $machine == raspi3b ]]; then mcopy -n -i "$FAT" ::/bcm2837-rpi-3-b.dtb "$WORK/"; fi
say "image $(basename "$image"), kernel $(du -h "$WORK/vmlinuz" | cut -f1), initrd $(du -h "$WORK/initrd.img" | cut -f1)"

# --- provisioning through the boot partition's letterbox.toml ---------------------------------------
USER_ADDR=tester@home.arpa
USER_PW="test-pw-$(od -An -N6 -tx1 /dev/urandom | tr -d ' \n')"
ssh-keygen -q -t ed25519 -N '' -C letterbox-test-boot -f "$WORK/id_test"
mcopy -n -i "$FAT" ::/letterbox.toml "$WORK/letterbox.toml.orig"
grep -q '^#enabled = false$' "$WORK/letterbox.toml.orig" || {
  echo "test-boot.sh: the image's letterbox.toml has no '#enabled = false' line under [ssh]" >&2
  exit 1
}
{
  sed "s|^#enabled = false\$|enabled = true\nauthorized_keys = [\"$(cat "$WORK/id_test.pub")\"]|" \
    "$WORK/letterbox.toml.orig"
  printf '\n[[user]]\naddress = "%s"\npassword = "%s"\naliases = ["postmaster@home.arpa"]\n' \
    "$USER_ADDR" "$USER_PW"
} >"$WORK/letterbox.toml"
mcopy -o -i "$FAT" "$WORK/letterbox.toml" ::/letterbox.toml

# --- ports -----------------------------------------------------------------------------------------
declare -A PORT=()
for p in 25 587 465 143 993 110 995 22; do
  PORT[$p]=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
done
fwd=
for p in "${!PORT[@]}"; do fwd+=",hostfwd=tcp:127.0.0.1:${PORT[$p]}-:$p"; done

# --- the host side of the checks: python3 clients ----------------------------------------------------
cat >"$WORK/mail.py" <<'EOF'
"""Host-side mail checks against the booted image (certificates not verified: self-signed)."""
import imaplib, poplib, smtplib, socket, ssl, sys, time

ctx = ssl.create_default_context()
ctx.check_hostname = False
ctx.verify_mode = ssl.CERT_NONE
cmd, args = sys.argv[1], sys.argv[2:]

def wait_imaps(port, deadline):
    """Waits until IMAPS answers with its greeting (a forwarded port accepts before that)."""
    last = None
    while time.time() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
                with ctx.wrap_socket(s) as t:
                    t.settimeout(10)
                    g = t.recv(200)
                    if g.startswith(b"* OK"):
                        print("imaps greeting:", g.decode(errors="replace").strip())
                        return 0
                    last = g
        except Exception as e:  # not up yet
            last = e
        time.sleep(2)
    print("no IMAPS greeting:", last)
    return 1

if cmd == "wait-imaps":
    sys.exit(wait_imaps(int(args[0]), time.time() + float(args[1])))

if cmd == "send":
    port, user, pw, token = int(args[0]), args[1], args[2], args[3]
    msg = (f"From: {user}\r\nTo: {user}\r\nSubject: boot test {token}\r\n"
           f"Message-ID: <{token}@test-boot>\r\n\r\nHello from test-boot.sh: {token}\r\n")
    with smtplib.SMTP("127.0.0.1", port, timeout=60) as s:
        s.ehlo("test-boot.example")
        s.starttls(context=ctx)
        s.ehlo("test-boot.example")
        s.login(user, pw)
        refused = s.sendmail(user, [user], msg)
        assert not refused, refused
    print(f"submission: sent {token} with STARTTLS and AUTH as {user}")
    sys.exit(0)

if cmd == "imaps":
    port, user, pw, token = int(args[0]), args[1], args[2], args[3]
    deadline = time.time() + 60
    while True:
        m = imaplib.IMAP4_SSL("127.0.0.1", port, ssl_context=ctx, timeout=60)
        m.login(user, pw)
        m.select("INBOX", readonly=True)
        typ, data = m.search(None, "SUBJECT", f'"{token}"')
        ids = data[0].split()
        if ids:
            typ, data = m.fetch(ids[-1], "(BODY.PEEK[])")
            body = data[0][1].decode(errors="replace")
            assert token in body, body
            print(f"imaps: message {ids[-1].decode()} of INBOX has {token} "
                  f"({len(data[0][1])} bytes with the added headers)")
            m.logout()
            sys.exit(0)
        m.logout()
        if time.time() > deadline:
            print("imaps: the message did not arrive within 60 s")
            sys.exit(1)
        time.sleep(2)

if cmd == "imaps-login":
    port, user, pw = int(args[0]), args[1], args[2]
    m = imaplib.IMAP4_SSL("127.0.0.1", port, ssl_context=ctx, timeout=60)
    m.login(user, pw)
    typ, data = m.select("INBOX", readonly=True)
    print(f"imaps: logged in as {user}, INBOX has {data[0].decode()} message(s)")
    m.logout()
    sys.exit(0)

if cmd == "pop3s":
    port, user, pw, token = int(args[0]), args[1], args[2], args[3]
    p = poplib.POP3_SSL("127.0.0.1", port, context=ctx, timeout=60)
    p.user(user)
    p.pass_(pw)
    count, size = p.stat()
    for i in range(count, 0, -1):
        resp, lines, octets = p.retr(i)
        if any(token.encode() in l for l in lines):
            print(f"pop3s: message {i} of {count} has {token}")
            p.quit()
            sys.exit(0)
    p.quit()
    print(f"pop3s: {token} not among {count} messages")
    sys.exit(1)

if cmd == "leds":
    import json
    st = json.load(sys.stdin)
    leds = st.get("leds") or {}
    lit = {k: (v or {}).get("lit") for k, v in leds.items()}
    faults = [f.get("code") for f in st.get("faults", [])]
    print(f"status --json: board={st.get('board')} leds lit={lit} "
          f"patterns={ {k: (v or {}).get('pattern') for k, v in leds.items()} } faults={faults}")
    want = args[0]
    if want == "fault1":
        sys.exit(0 if 1 in faults else 1)
    if want == "rpi3":
        ok = (lit.get("green") is True and lit.get("amber") is True and lit.get("red") is False
              and not faults)
        sys.exit(0 if ok else 1)
    sys.exit(0)
sys.exit(f"unknown command {cmd}")
EOF

SSH=(ssh -q -i "$WORK/id_test" -p "${PORT[22]}" -o StrictHostKeyChecking=no
  -o UserKnownHostsFile=/dev/null -o ConnectTimeout=10 -o BatchMode=yes -o ServerAliveInterval=10
  root@127.0.0.1)
ssh_run() { timeout 120 "${SSH[@]}" "$@"; }

fail() {
  echo "test-boot.sh: FAIL: $*" >&2
  if [[ -n "$QEMU_PID" ]] && ! kill -0 "$QEMU_PID" 2>/dev/null; then
    local qrc=0
    wait "$QEMU_PID" 2>/dev/null || qrc=$?
    QEMU_PID=
    local why=
    if ((qrc == 124)); then why=": its timeout"; fi
    echo "test-boot.sh: qemu has exited (status $qrc$why)" >&2
  fi
  if [[ -n "${QLOG:-}" && -s "$QLOG" ]]; then
    echo "---- qemu's output ($QLOG) ----" >&2
    tail -n 30 "$QLOG" >&2
  fi
  if [[ -n "${LOG:-}" && -e "$LOG" ]]; then
    echo "---- last 60 lines of $LOG ----" >&2
    tail -n 60 "$LOG" | tr -d '\r' >&2
  fi
  exit 1
}
# Every wait for the guest calls this between its tries: qemu gone means the guest is gone.
qemu_alive() { # qemu_alive WHAT
  kill -0 "$QEMU_PID" 2>/dev/null || fail "qemu exited while waiting for $1"
}

boot() { # boot NAME: starts qemu in the background, serial output in $WORK/serial-NAME.log
  LOG=$WORK/serial-$1.log
  QLOG=$WORK/qemu-$1.log
  : >"$LOG"
  local q=(qemu-system-aarch64 -display none -no-reboot -monitor none -serial "file:$LOG")
  # shellcheck disable=SC2054 # the commas belong to qemu's option values
  if [[ $machine == virt ]]; then
    q+=(-M virt -cpu cortex-a72 -m 1024 -smp 2
      -kernel "$WORK/vmlinuz" -initrd "$WORK/initrd.img"
      -append "console=ttyAMA0 root=LABEL=lbroot rw rootwait fsck.repair=yes net.ifnames=0"
      -drive "file=$DISK,format=raw,if=none,id=hd0,cache=writeback" -device virtio-blk-pci,drive=hd0
      -netdev "user,id=n0$fwd" -device virtio-net-pci,netdev=n0,romfile=)
  else
    q+=(-M raspi3b -m 1G
      -kernel "$WORK/vmlinuz" -initrd "$WORK/initrd.img" -dtb "$WORK/bcm2837-rpi-3-b.dtb"
      -append "console=ttyAMA0,115200 root=/dev/mmcblk0p2 rw rootwait fsck.repair=yes net.ifnames=0 modprobe.blacklist=bcm2835_wdt,hci_uart,btbcm"
      -drive "file=$DISK,format=raw,if=sd,cache=writeback"
      -netdev "user,id=n0$fwd" -device usb-net,netdev=n0)
  fi
  say "boot $1: ${q[*]:0:9} ... (timeout $BOOT_TIMEOUT s)"
  boot_start=$SECONDS
  timeout -k 5 "$((BOOT_TIMEOUT + 300))" "${q[@]}" >"$QLOG" 2>&1 &
  QEMU_PID=$!
}

wait_imaps() {
  # Short tries (5 s each), so that a qemu that has exited ends the wait at once.
  until python3 "$WORK/mail.py" wait-imaps "${PORT[993]}" 5 >"$WORK/wait-imaps.txt"; do
    qemu_alive "the IMAPS greeting (boot)"
    ((SECONDS - boot_start < BOOT_TIMEOUT)) || {
      cat "$WORK/wait-imaps.txt"
      fail "IMAPS did not answer within $BOOT_TIMEOUT s"
    }
  done
  cat "$WORK/wait-imaps.txt"
  qemu_alive "the IMAPS greeting (boot)"
  IMAPS_S=$((SECONDS - boot_start))
  say "IMAPS answered $IMAPS_S s after qemu started"
}

wait_ssh() {
  local deadline=$((SECONDS + 180))
  until timeout 30 "${SSH[@]}" true 2>/dev/null; do
    qemu_alive "SSH"
    ((SECONDS < deadline)) || fail "SSH did not answer within 180 s"
    sleep 3
  done
  say "SSH answered $((SECONDS - boot_start)) s after qemu started"
}

poweroff() {
  say "poweroff"
  timeout 30 "${SSH[@]}" systemctl poweroff 2>/dev/null || true
  local deadline=$((SECONDS + 120))
  while kill -0 "$QEMU_PID" 2>/dev/null && ((SECONDS < deadline)); do
    # raspi3b has no PSCI: the kernel halts and QEMU keeps running.
    if grep -aq 'reboot: Power down\|reboot: System halted' "$LOG"; then sleep 2; break; fi
    sleep 1
  done
  grep -aq 'reboot: Power down\|reboot: System halted' "$LOG" || say "warning: no clean power-down seen"
  kill "$QEMU_PID" 2>/dev/null || true
  wait "$QEMU_PID" 2>/dev/null || true
  QEMU_PID=
  say "qemu stopped"
}

# --- case 1: first boot ------------------------------------------------------------------------------
boot first
wait_imaps
IMAPS_FIRST=$IMAPS_S
TOKEN=tb$(od -An -N4 -tx1 /dev/urandom | tr -d ' \n')
python3 "$WORK/mail.py" send "${PORT[587]}" "$USER_ADDR" "$USER_PW" "$TOKEN" || fail "submission"
wait_ssh
if [[ $machine == raspi3b ]]; then
  board=$(ssh_run letterbox config-get board.name) || fail "letterbox config-get board.name"
  [[ $board == rpi3 ]] || fail "board \"auto\" resolved to \"$board\", not rpi3"
  say "board: auto -> $board ($(ssh_run 'tr -d "\0" </proc/device-tree/model'))"
  # Amber (27) shows unseen mail: checked before any client reads the message.
  for i in $(seq 20); do
    st=$(ssh_run letterbox status --json) || fail "letterbox status --json over SSH"
    if python3 "$WORK/mail.py" leds rpi3 <<<"$st" >"$WORK/leds.txt"; then break; fi
    ((i < 20)) || { cat "$WORK/leds.txt"; fail "green and amber lit, red off, no fault: not seen"; }
    sleep 3
  done
  cat "$WORK/leds.txt"
  gpio=$(ssh_run 'cat /sys/kernel/debug/gpio') || fail "reading /sys/kernel/debug/gpio"
  grep -E 'GPIO(17|22|27)[ )]' <<<"$gpio" | sed 's/^/  kernel: /'
  grep -Eq 'GPIO17 *\|letterbox.*out hi' <<<"$gpio" || grep -Eq 'GPIO17 .*out hi' <<<"$gpio" ||
    fail "GPIO 17 is not a high output"
  grep -Eq 'GPIO27 .*out hi' <<<"$gpio" || fail "GPIO 27 is not a high output"
  grep -Eq 'GPIO22 .*out lo' <<<"$gpio" || fail "GPIO 22 is not a low output"
  say "GPIO: 17 high, 27 high, 22 low (board rpi3)"
fi
python3 "$WORK/mail.py" imaps "${PORT[993]}" "$USER_ADDR" "$USER_PW" "$TOKEN" || fail "IMAPS read"
python3 "$WORK/mail.py" pop3s "${PORT[995]}" "$USER_ADDR" "$USER_PW" "$TOKEN" || fail "POP3S read"
echo "---- letterbox status (over SSH) ----"
ssh_run letterbox status | tee "$WORK/status-first.txt" || fail "letterbox status over SSH"
echo "-------------------------------------"
# shellcheck disable=SC2016 # expanded on the guest
ssh_run 'echo "data: $(df -h --output=size,target /var/lib/letterbox | tail -n1) (grown $(cat /var/lib/misc/letterbox-data-grown))";
  echo "host name: $(hostname); systemd: $(systemctl is-system-running)";
  echo "letterbox.service: $(systemctl show -p ActiveState,SubState,Type,WatchdogUSec letterbox.service | tr "\n" " ")";
  echo "ssh.service enabled: $(systemctl is-enabled ssh.service 2>&1); journal files on the card: $(find /var/log/journal -type f 2>/dev/null | wc -l), in RAM: $(find /run/log/journal -type f | wc -l)";
  echo "root fs: $(df -h --output=used,size / | tail -n1)"; systemctl --failed --no-legend' |
  sed 's/^/  /' | tee "$WORK/facts.txt"
data_mib=$(ssh_run 'df --output=size -m /var/lib/letterbox | tail -n1' | tr -d ' ')
# 128 MiB in the image; the 2 GiB card leaves it about 760 MiB.
((data_mib > 512)) || fail "the data partition did not grow ($data_mib MiB)"
if ssh_run "grep -F -- '$USER_PW' /boot/firmware/letterbox.toml"; then
  fail "the plaintext password is still in the boot partition's letterbox.toml"
fi
if ((keep)); then
  failed=0
  cat <<EOF

The image runs ($machine). Ctrl-C stops it.
  ssh:         ${SSH[*]}
  account:     $USER_ADDR  password: $USER_PW
  submission:  127.0.0.1:${PORT[587]} (STARTTLS)   submissions: 127.0.0.1:${PORT[465]}
  IMAPS:       127.0.0.1:${PORT[993]}   IMAP: 127.0.0.1:${PORT[143]}
  POP3S:       127.0.0.1:${PORT[995]}   POP3: 127.0.0.1:${PORT[110]}   SMTP: 127.0.0.1:${PORT[25]}
  serial log:  $LOG
EOF
  wait "$QEMU_PID" || true
  QEMU_PID=
  exit 0
fi
poweroff
mcopy -n -i "$FAT" ::/letterbox.toml "$WORK/letterbox.toml.after"
if grep -qF -- "$USER_PW" "$WORK/letterbox.toml.after"; then
  fail "the plaintext password is still on the boot partition after power-off"
fi
echo "boot partition letterbox.toml after first boot (the [[user]] table):"
sed -n '/^\[\[user\]\]/,$p' "$WORK/letterbox.toml.after" | sed 's/^/  /'
say "case 1 ($machine): PASS (IMAPS after $IMAPS_FIRST s)"

# --- case 2: a mistake in letterbox.toml (virt) ------------------------------------------------------
if [[ $machine == virt ]]; then
  sed 's/^#max_connections = 200$/max_connections = "lots"/' "$WORK/letterbox.toml.after" >"$WORK/letterbox.toml.bad"
  cmp -s "$WORK/letterbox.toml.after" "$WORK/letterbox.toml.bad" && fail "could not break letterbox.toml"
  mcopy -o -i "$FAT" "$WORK/letterbox.toml.bad" ::/letterbox.toml
  mdel -i "$FAT" ::/letterbox-error.txt 2>/dev/null || true
  boot bad-config
  wait_imaps
  IMAPS_BAD=$IMAPS_S
  python3 "$WORK/mail.py" imaps-login "${PORT[993]}" "$USER_ADDR" "$USER_PW" ||
    fail "IMAPS login on the defaults"
  wait_ssh
  st=$(ssh_run letterbox status --json) || fail "letterbox status --json over SSH"
  python3 "$WORK/mail.py" leds fault1 <<<"$st" || fail "status does not show fault 1"
  ssh_run letterbox status | grep -i 'fault' | sed 's/^/  status: /' || true
  poweroff
  mcopy -n -i "$FAT" ::/letterbox-error.txt "$WORK/letterbox-error.txt" ||
    fail "no letterbox-error.txt on the boot partition"
  echo "letterbox-error.txt on the boot partition:"
  sed 's/^/  /' "$WORK/letterbox-error.txt"
  grep -q 'max_connections' "$WORK/letterbox-error.txt" || fail "letterbox-error.txt does not name the key"
  say "case 2 (bad letterbox.toml): PASS (IMAPS after $IMAPS_BAD s)"
fi

failed=0
say "PASS: test-boot.sh --machine $machine in $((SECONDS - t0)) s"
