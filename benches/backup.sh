#!/usr/bin/env bash
# Issue 15 figures: time, peak RSS and size of `letterbox backup` (plain and encrypted),
# `backup --verify` and `restore` for a store of about MB megabytes of realistic mail,
# then a second backup after 100 new messages, full and incremental.
#
# The mail: an mbox generated here and imported with `letterbox import`: plain-text
# messages of 1-12 KB whose bodies quote the message they answer (as replies do), and
# one in five with an attachment of 20-400 KB of random bytes (base64, so it compresses
# only to its 3/4 of binary, as photos and PDFs do). So the backup's size means something,
# unlike a loader whose bodies repeat one line.
#
#   bash benches/backup.sh [MB]       (default 1024)
#
# Builds the release binary if needed (BIN=path uses another one). Prints the load
# average before and after: the figures are only comparable on an idle machine.
set -euo pipefail
cd "$(dirname "$0")/.."
if [[ -z "${BIN:-}" ]]; then
  cargo build --release --locked >/dev/null 2>&1 || cargo build --release --locked
  BIN=target/release/letterbox
fi
BIN=$(realpath "$BIN")
MB=${1:-1024}
work=$(mktemp -d "${TMPDIR:-/var/tmp}/lb-backup-bench.XXXXXX")
trap 'rm -rf "$work"' EXIT
printf '[server]\ndata_dir = "%s/data"\n' "$work" >"$work/letterbox.toml"
printf '[server]\ndata_dir = "%s/restored"\n' "$work" >"$work/restore.toml"
echo "a passphrase for the benchmark" >"$work/pass"
echo "load average before: $(cut -d' ' -f1-3 /proc/loadavg)"

measure() { # label, command...: prints wall time and peak RSS
  local label=$1
  shift
  /usr/bin/time -f "$label: %e s wall, %U s user, peak RSS %M KiB" "$@" >"$work/out" 2>"$work/err" || {
    cat "$work/out" "$work/err" >&2
    exit 1
  }
  grep -v '^letterbox: WARNING' "$work/err" | tail -n1
}
size() { # file label
  local b
  b=$(stat -c %s "$1")
  echo "$2: $b bytes ($((b / 1048576)) MiB)"
}

# mbox of realistic mail: gen.py OUT BYTES SEED PREFIX [COUNT] (BYTES, or COUNT messages)
cat >"$work/gen.py" <<'EOF'
import base64, os, random, sys
out, total, seed, prefix = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
count = int(sys.argv[5]) if len(sys.argv) > 5 else None
rnd = random.Random(seed)
words = ("the a and to of we you our home school trip photo garden dinner weekend "
         "birthday doctor train tickets holiday grandma kids car house rent bill "
         "thanks see soon love tomorrow monday friday meeting call later".split())
def para():
    return "\n".join(" ".join(rnd.choice(words) for _ in range(rnd.randint(8, 14)))
                     for _ in range(rnd.randint(2, 8)))
written, i, prev = 0, 0, ""
with open(out, "w", newline="\n") as f:
    while (written < total) if count is None else (i < count):
        text = "\n\n".join(para() for _ in range(rnd.randint(1, 4)))
        if prev and rnd.random() < 0.6:
            quoted = "\n".join("> " + l for l in prev.splitlines()[:80])
            text += "\n\nOn Mon, 3 Mar 2025, someone wrote:\n" + quoted
        prev = text
        head = ("From sender%d@example.com Mon Mar %2d 10:%02d:%02d 2025\n"
                "Message-ID: <%s%d@example.com>\nFrom: Sender <sender%d@example.com>\n"
                "To: alice@home.arpa\nSubject: %s %d\nDate: Mon, 3 Mar 2025 10:00:00 +0000\n"
                "MIME-Version: 1.0\n" % (i % 97, 1 + i % 28, i % 60, i % 59, prefix, i, i % 97, prefix, i))
        if rnd.random() < 0.2:
            blob = base64.encodebytes(os.urandom(rnd.randint(20_000, 400_000))).decode()
            msg = (head + 'Content-Type: multipart/mixed; boundary="b%d"\n\n--b%d\n'
                   "Content-Type: text/plain; charset=utf-8\n\n%s\n--b%d\n"
                   'Content-Type: image/jpeg; name="p%d.jpg"\nContent-Transfer-Encoding: base64\n\n'
                   "%s--b%d--\n\n" % (i, i, text, i, i, blob, i))
        else:
            msg = head + "Content-Type: text/plain; charset=utf-8\n\n" + text + "\n\n"
        f.write(msg)
        written += len(msg)
        i += 1
print(i)
EOF
n=$(python3 "$work/gen.py" "$work/mail.mbox" $((MB * 1000 * 1000)) 15 message)
echo "mbox: $n messages, $(($(stat -c %s "$work/mail.mbox") / 1000000)) MB"
echo pw-bench-12345 | "$BIN" --config "$work/letterbox.toml" user add alice@home.arpa --password-stdin >/dev/null
measure "import" "$BIN" --config "$work/letterbox.toml" import alice@home.arpa --mbox "$work/mail.mbox"
rm -f "$work/mail.mbox"
store_bytes=$(stat -c %s "$work/data/letterbox.redb")
echo "store file: $store_bytes bytes ($((store_bytes / 1048576)) MiB)"
sync
measure "backup (zstd, no passphrase)" "$BIN" backup "$work/plain.backup" --config "$work/letterbox.toml"
measure "backup (zstd + age)" "$BIN" backup "$work/enc.backup" --passphrase-file "$work/pass" --config "$work/letterbox.toml"
for f in plain enc; do
  b=$(stat -c %s "$work/$f.backup")
  echo "$f.backup: $b bytes ($((b / 1048576)) MiB, $((100 * b / store_bytes))% of the store file)"
done
measure "verify (encrypted)" "$BIN" backup --verify "$work/enc.backup" --passphrase-file "$work/pass" --config "$work/letterbox.toml"
measure "restore (encrypted)" "$BIN" restore "$work/enc.backup" --passphrase-file "$work/pass" --config "$work/restore.toml"
rm -rf "$work/restored" "$work/plain.backup"

echo "--- a second backup after 100 new messages"
# 100 new messages of the same mix (another seed).
python3 "$work/gen.py" "$work/new.mbox" 0 16 new 100 >/dev/null
echo "new mail: $(($(stat -c %s "$work/new.mbox") / 1000)) kB"
"$BIN" --config "$work/letterbox.toml" import alice@home.arpa --mbox "$work/new.mbox" >/dev/null
sync
measure "second full backup (zstd + age)" "$BIN" backup "$work/full2.backup" --passphrase-file "$work/pass" --config "$work/letterbox.toml"
measure "incremental backup on the first (zstd + age)" "$BIN" backup "$work/inc.backup" --incremental "$work/enc.backup" --passphrase-file "$work/pass" --config "$work/letterbox.toml"
size "$work/full2.backup" "second full backup"
size "$work/inc.backup" "incremental backup"
measure "verify (incremental + its base)" "$BIN" backup --verify "$work/inc.backup" --passphrase-file "$work/pass" --config "$work/letterbox.toml"
measure "restore (incremental + its base)" "$BIN" restore "$work/inc.backup" --passphrase-file "$work/pass" --config "$work/restore.toml"
echo "load average after: $(cut -d' ' -f1-3 /proc/loadavg)"
