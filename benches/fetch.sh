#!/usr/bin/env bash
# `[[fetch]]` throughput (issue 15 part 4): one letterbox pulls N messages of SIZE bytes from a
# second letterbox over IMAPS on loopback (certificate verified through ca_file), with the
# checks of port-25 mail (DNS answered NXDOMAIN by a local stub, so no lookup waits on the
# network). Prints the time from the puller's start until every message is stored,
# messages/s, MB/s and the puller's peak RSS (VmHWM).
#
# Usage: bash benches/fetch.sh          (BIN=target/release/letterbox for the release build)
# Knobs: N=2000 SIZE=4096 BIN=target/debug/letterbox
set -euo pipefail
cd "$(dirname "$0")/.."
N=${N:-2000}
SIZE=${SIZE:-4096}
BIN=${BIN:-target/debug/letterbox}
[[ -x $BIN ]] || cargo build --locked
work=$(mktemp -d)
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT

port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

# A DNS stub answering NXDOMAIN to everything.
DNS_PORT=$(port)
python3 - "$DNS_PORT" <<'PY' &
import socket, sys
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.bind(("127.0.0.1", int(sys.argv[1])))
while True:
    q, a = s.recvfrom(1500)
    i = 12
    while i < len(q) and q[i]:
        i += q[i] + 1
    i += 5
    s.sendto(q[:2] + bytes([0x81, 0x83]) + q[4:6] + b"\0\0\0\0\0\0" + q[12:i], a)
PY
pids+=($!)

config() { # name hostname extra
  local d=$work/$1
  mkdir -p "$d"
  cat > "$d/letterbox.toml" <<TOML
[server]
data_dir = "$d/data"
hostname = "$2"
[listen]
smtp = "127.0.0.1:$(port)"
submission = ""
submissions = ""
imap = ""
imaps = "127.0.0.1:$(port)"
pop3 = ""
pop3s = ""
[dns]
nameservers = ["127.0.0.1:$DNS_PORT"]
[[user]]
address = "$1@home.arpa"
password = "bench-password-1"
$3
TOML
}
start() { # name
  "$BIN" serve --config "$work/$1/letterbox.toml" 2> "$work/$1/log" &
  pids+=($!)
  for _ in $(seq 600); do grep -q "letterbox ready" "$work/$1/log" && return; sleep 0.1; done
  echo "$1 did not start" >&2; cat "$work/$1/log" >&2; exit 1
}

config remote localhost ""
start remote
RPORT=$(sed -n 's/^imaps = "127.0.0.1:\(.*\)"/\1/p' "$work/remote/letterbox.toml")
python3 - "$RPORT" "$N" "$SIZE" <<'PY'
import imaplib, ssl, sys
port, n, size = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3])
M = imaplib.IMAP4_SSL("127.0.0.1", port, ssl_context=ssl._create_unverified_context())
M.login("remote@home.arpa", "bench-password-1")
for i in range(n):
    head = ("From: a@example.org\r\nSubject: m %d\r\nMessage-ID: <b-%d@x>\r\n\r\n" % (i, i)).encode()
    M.append("INBOX", None, None, head + b"x" * max(0, size - len(head) - 2) + b"\r\n")
M.logout()
PY
echo "bench-password-1" > "$work/pw"
config local letterbox.home.arpa "[[fetch]]
account = \"local@home.arpa\"
host = \"localhost\"
port = $RPORT
username = \"remote@home.arpa\"
password_file = \"$work/pw\"
ca_file = \"$work/remote/data/tls/ca.pem\""
t0=$(date +%s.%N)
start local
LPID=${pids[-1]}
peak=0
for _ in $(seq 36000); do
  rss=$(awk '/VmHWM/ {print $2}' "/proc/$LPID/status")
  (( rss > peak )) && peak=$rss
  got=$("$BIN" status --json --config "$work/local/letterbox.toml" | python3 -c 'import json,sys; print(json.load(sys.stdin)["store"]["messages"])')
  [[ $got -ge $N ]] && break
  sleep 0.2
done
t1=$(date +%s.%N)
python3 - "$t0" "$t1" "$N" "$SIZE" "$peak" "$BIN" <<'PY'
import sys
t0, t1, n, size, peak, binary = float(sys.argv[1]), float(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5]), sys.argv[6]
s = t1 - t0
print(f"{binary}: pulled {n} messages of {size} bytes in {s:.1f} s (start included): "
      f"{n / s:.0f} messages/s, {n * size / s / 1e6:.2f} MB/s; puller peak RSS {peak / 1024:.1f} MiB")
PY
