#!/usr/bin/env bash
# Import rate and peak memory: `letterbox import` of a generated mbox (without a daemon,
# straight into the store, and through a running daemon's control socket), beside
# Dovecot's `doveadm import` of the same mbox and `mbsync` pushing the same mail (as a
# Maildir) over IMAP into Dovecot.
#
#   benches/import.sh [MESSAGES] [RUNS]      (defaults 100000 and 3)
#   LETTERBOX_ONLY=1 benches/import.sh ...   without the Dovecot peers
#   PEERS_ONLY=1 benches/import.sh ...       only the Dovecot peers (letterbox imports
#       once, untimed, to export the Maildir mbsync pushes; BIN=target/debug/letterbox
#       does for that)
#   MBSYNC_N=20000 MBSYNC_RUNS=1 benches/import.sh 100000 1
#       mbsync pushes only the first MBSYNC_N messages (it runs at about 50 msg/s; its
#       msg/s and MB/s are then of that subset), MBSYNC_RUNS times (default RUNS)
#
# Prints one line per tool and run, then the medians: messages/s, MB/s (of the mbox
# file's size) and peak RSS (GNU time's maximum resident set size; for the daemon path,
# the daemon's VmHWM, the importer's own beside it). Needs: a release build
# (cargo build --release), python3, GNU time, dovecot-imapd, isync (mbsync).
# Everything lives in one temporary directory; Dovecot runs on a loopback port of its
# own and is stopped at the end. fsync settings are each tool's defaults.
set -euo pipefail

n="${1:-100000}"
runs="${2:-3}"
root="$(cd "$(dirname "$0")/.." && pwd)"
bin="${BIN:-$root/target/release/letterbox}"
[[ -x "$bin" ]] || { echo "build first: cargo build --release" >&2; exit 2; }
[[ "$bin" = /* ]] || bin="$root/$bin"
for t in python3 /usr/bin/time doveadm dovecot mbsync; do
  command -v "$t" >/dev/null || { echo "missing $t (apt-get install time dovecot-imapd isync)" >&2; exit 2; }
done

tmp="$(mktemp -d /tmp/lb-import-bench.XXXXXX)"
chmod 755 "$tmp" # Dovecot's mail user reads the mbox
dpid=""
cleanup() {
  [[ -n "$dpid" ]] && kill "$dpid" 2>/dev/null || true
  [[ -n "${dcpid:-}" ]] && kill "$dcpid" 2>/dev/null || true
  sleep 0.5
  rm -rf "$tmp"
}
trap cleanup EXIT

# The mail: N messages, 1-4 KB, a third multipart, `From ` lines in some bodies, dates
# spread over a year; mboxrd.
python3 - "$tmp/mail.mbox" "$n" <<'EOF'
import sys, random
path, n = sys.argv[1], int(sys.argv[2])
rnd = random.Random(15)
words = "the a box mail home family photo trip school garden letter note".split()
with open(path, "w") as f:
    for i in range(n):
        day = 1 + i % 28
        f.write("From sender%d@example.com Mon Mar %2d 10:%02d:%02d 2025\n" % (i % 97, day, i % 60, i % 59))
        f.write("Message-ID: <bench%d@example.com>\nFrom: Sender <sender%d@example.com>\nTo: alice@home.arpa\n" % (i, i % 97))
        f.write("Subject: message %d about %s\nDate: Mon, %d Mar 2025 10:00:00 +0000\n" % (i, rnd.choice(words), day))
        body = "\n".join(" ".join(rnd.choice(words) for _ in range(12)) for _ in range(rnd.randint(15, 60)))
        if i % 3 == 0:
            f.write('MIME-Version: 1.0\nContent-Type: multipart/mixed; boundary="b%d"\n\n--b%d\nContent-Type: text/plain\n\n%s\n>From the garden\n--b%d--\n\n' % (i, i, body, i))
        else:
            f.write("Content-Type: text/plain\n\n%s\n\n" % body)
EOF
bytes=$(stat -c %s "$tmp/mail.mbox")
echo "mbox: $n messages, $((bytes / 1000000)) MB; $runs runs each; load average $(cut -d' ' -f1-3 /proc/loadavg)"

results="$tmp/results"
: >"$results"
record() { # tool secs rss_kb [messages bytes]
  local rn=${4:-$n} rb=${5:-$bytes}
  printf '%s\t%s\t%s\t%s\t%s\n' "$1" "$2" "$3" "$rn" "$rb" >>"$tmp/raw"
  awk -v t="$1" -v s="$2" -v r="$3" -v n="$rn" -v b="$rb" \
    'BEGIN { printf "%-28s %8.1f s %9.0f msg/s %7.1f MB/s %8.1f MB peak RSS\n", t, s, n/s, b/1e6/s, r/1024 }' | tee -a "$results"
}
timed() { # outfile cmd...  -> sets secs, rss
  /usr/bin/time -f "%e %M" -o "$tmp/time" "$@" >"$tmp/out" 2>&1 || { cat "$tmp/out" >&2; exit 1; }
  read -r secs rss <"$tmp/time"
}

lb_config() { # dir
  cat >"$1/letterbox.toml" <<EOT
[server]
hostname = "bench.home.arpa"
domains = ["home.arpa"]
data_dir = "$1/data"
[listen]
smtp = "127.0.0.1:0"
submission = ""
submissions = ""
imap = ""
imaps = ""
pop3 = ""
pop3s = ""
EOT
}

if [[ "${PEERS_ONLY:-0}" == 1 ]]; then
  d="$tmp/lb1"; mkdir -p "$d"; lb_config "$d"
  echo pw-bench-12345 | "$bin" --config "$d/letterbox.toml" user add alice@home.arpa --password-stdin >/dev/null
  "$bin" --config "$d/letterbox.toml" import alice@home.arpa --mbox "$tmp/mail.mbox" >/dev/null
fi
for r in $(seq 1 "$runs"); do
  [[ "${PEERS_ONLY:-0}" == 1 ]] && break
  # 1. letterbox, no daemon: the CLI writes the store itself.
  d="$tmp/lb$r"; mkdir -p "$d"; lb_config "$d"
  echo pw-bench-12345 | "$bin" --config "$d/letterbox.toml" user add alice@home.arpa --password-stdin >/dev/null
  timed "$bin" --config "$d/letterbox.toml" import alice@home.arpa --mbox "$tmp/mail.mbox"
  record "letterbox import (direct)" "$secs" "$rss"

  # 2. letterbox through the running daemon.
  d="$tmp/lbd$r"; mkdir -p "$d"; lb_config "$d"
  echo pw-bench-12345 | "$bin" --config "$d/letterbox.toml" user add alice@home.arpa --password-stdin >/dev/null
  "$bin" --config "$d/letterbox.toml" serve >"$d/serve.log" 2>&1 &
  dpid=$!
  for _ in $(seq 1 100); do [[ -S "$d/data/control.sock" ]] && break; sleep 0.1; done
  timed "$bin" --config "$d/letterbox.toml" import alice@home.arpa --mbox "$tmp/mail.mbox"
  hwm=$(awk '/VmHWM/ {print $2}' "/proc/$dpid/status")
  record "letterbox import (daemon)" "$secs" "$hwm"
  echo "    (the importer process itself: $((rss / 1024)) MB peak RSS)" | tee -a "$results"
  kill "$dpid"; wait "$dpid" 2>/dev/null || true; dpid=""
done

if [[ "${LETTERBOX_ONLY:-0}" == 1 ]]; then
  peers=0
else
  peers=1
fi
if ((peers)); then
# Dovecot: a passwd-file user with the uid of the system user `mail`, Maildir storage;
# its auth service must run for doveadm's user lookup.
dc="$tmp/dovecot"; mkdir -p "$dc/run" "$dc/state" "$dc/mail"
chown mail:mail "$dc/mail"
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
echo "bench:{PLAIN}bench-pw:$(id -u mail):$(id -g mail)::$dc/mail/bench::" >"$dc/users"
cat >"$dc/dovecot.conf" <<EOT
protocols = imap
listen = 127.0.0.1
base_dir = $dc/run
state_dir = $dc/state
instance_name = lbbench-import-$port
log_path = $dc/dovecot.log
ssl = no
disable_plaintext_auth = no
auth_mechanisms = plain
first_valid_uid = 0
mail_location = maildir:~/Maildir
passdb {
  driver = passwd-file
  args = scheme=PLAIN username_format=%u $dc/users
}
userdb {
  driver = passwd-file
  args = username_format=%u $dc/users
}
service imap-login {
  inet_listener imap {
    address = 127.0.0.1
    port = $port
  }
  inet_listener imaps {
    port = 0
  }
}
EOT
mkdir -p "$tmp/mboxdir"; chown mail:mail "$tmp/mboxdir"
dovecot -F -c "$dc/dovecot.conf" &
dcpid=$!
for _ in $(seq 1 100); do python3 -c "import socket; socket.create_connection(('127.0.0.1', $port))" 2>/dev/null && break; sleep 0.1; done
for r in $(seq 1 "$runs"); do
  rm -rf "$dc/mail/bench" "$tmp/mboxdir/.imap"
  timed doveadm -c "$dc/dovecot.conf" import -u bench "mbox:$tmp/mboxdir:INBOX=$tmp/mail.mbox" "" all
  record "doveadm import" "$secs" "$rss"
done

# mbsync: the same mail as a Maildir (letterbox's export), pushed over IMAP.
"$bin" --config "$tmp/lb1/letterbox.toml" export alice@home.arpa --maildir "$tmp/md" >/dev/null
inbox_files() { for sub in cur new; do [[ -d "$tmp/md/$sub" ]] && find "$tmp/md/$sub" -type f; done; true; }
mn=${MBSYNC_N:-$n}
if ((mn < n)); then # keep the first MBSYNC_N messages (by name: the export's order)
  inbox_files | sort | tail -n +$((mn + 1)) | xargs -r rm -f
fi
mn=$(inbox_files | wc -l)
mb=$(inbox_files | xargs -r stat -c %s | awk '{ s += $1 } END { print s + 0 }')
echo "mbsync pushes $mn messages ($((mb / 1000000)) MB of Maildir files)"
for r in $(seq 1 "${MBSYNC_RUNS:-$runs}"); do
  rm -rf "$dc/mail/bench" "$tmp/mbsync-state"; mkdir -p "$tmp/mbsync-state"
  doveadm -c "$dc/dovecot.conf" user bench >/dev/null # warm the auth cache
  cat >"$tmp/mbsyncrc" <<EOT
IMAPAccount dc
Host 127.0.0.1
Port $port
User bench
Pass bench-pw
SSLType None
AuthMechs PLAIN

IMAPStore far
Account dc

MaildirStore near
Inbox $tmp/md/
SubFolders Maildir++

Channel push
Far :far:
Near :near:
Patterns INBOX
Sync Push
Create Far
SyncState $tmp/mbsync-state/
EOT
  timed mbsync -c "$tmp/mbsyncrc" -q push
  record "mbsync push to Dovecot ($mn)" "$secs" "$rss" "$mn" "$mb"
done

fi

echo "--- medians ($n messages, $((bytes / 1000000)) MB, $runs runs); load average $(cut -d' ' -f1-3 /proc/loadavg)"
python3 - "$tmp/raw" <<'EOF2'
import sys, statistics
rows = [l.rstrip("\n").split("\t") for l in open(sys.argv[1])]
for tool in dict.fromkeys(r[0] for r in rows):
    mine = [r for r in rows if r[0] == tool]
    secs = statistics.median(float(r[1]) for r in mine)
    rss = statistics.median(float(r[2]) for r in mine)
    n, b = int(mine[0][3]), int(mine[0][4])
    print("%-28s %8.1f s %9.0f msg/s %7.1f MB/s %8.1f MB peak RSS" % (tool, secs, n / secs, b / 1e6 / secs, rss / 1024))
EOF2
