#!/usr/bin/env bash
# Issue 17 figures for the learning junk filter: on a generated corpus
# (benches/spam_corpus.py; no usable public corpus ships in Debian or PyPI packages),
# train one account through IMAP as a person would (UID MOVE of the spam into Junk,
# $NotJunk on the ham), deliver the held-out test set over port 25, and count where it
# landed. Then the same with Debian's SpamAssassin (sa-learn on the same training set,
# `spamassassin --mbox` on the same test set). Also: the daemon's CPU per test message
# with the filter on and off (the difference is the filter's cost), its peak RSS, and
# the store's growth from training (the token statistics).
#
#   bash benches/spam.sh            (N_TRAIN=600 N_TEST=1000 per class by default)
#
# BIN=path uses another binary (default: the release build, built if needed).
set -euo pipefail
cd "$(dirname "$0")/.."
if [[ -z "${BIN:-}" ]]; then
  cargo build --release --locked >/dev/null 2>&1 || cargo build --release --locked
  BIN=target/release/letterbox
fi
export N_TRAIN=${N_TRAIN:-600} N_TEST=${N_TEST:-1000}
work=$(mktemp -d "${TMPDIR:-/var/tmp}/lb-spam-bench.XXXXXX")
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  rm -rf "$work"
}
trap cleanup EXIT
py=benches/spam_bench.py
python3 benches/spam_corpus.py "$work/corpus"
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
dns=$(python3 -c 'import socket; s=socket.socket(socket.AF_INET, socket.SOCK_DGRAM); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
python3 $py dns "$dns" &
pids+=($!)

cpu_ms() { # utime+stime of a pid in ms
  awk -v hz="$(getconf CLK_TCK)" '{print int(($14+$15)*1000/hz)}' "/proc/$1/stat"
}

run() { # learn(true|false): prints the figures of one daemon
  local learn=$1 dir="$work/run-$1"
  mkdir -p "$dir"
  local smtp imap
  smtp=$(free_port)
  imap=$(free_port)
  cat >"$dir/letterbox.toml" <<EOF
[server]
data_dir = "$dir/data"
[listen]
smtp = "127.0.0.1:$smtp"
imap = "127.0.0.1:$imap"
submission = ""
submissions = ""
imaps = ""
pop3 = ""
pop3s = ""
[dns]
nameservers = ["127.0.0.1:$dns"]
[spam]
learn = $learn
EOF
  "$BIN" serve --config "$dir/letterbox.toml" 2>"$dir/log" &
  local pid=$!
  pids+=($pid)
  for _ in $(seq 100); do
    grep -q "letterbox ready" "$dir/log" && break
    sleep 0.2
  done
  echo "bench-password-1" | "$BIN" user add alice@home.arpa --password-stdin --config "$dir/letterbox.toml" >/dev/null
  python3 $py deliver "$smtp" "$work/corpus/train/spam.mbox" >/dev/null
  python3 $py deliver "$smtp" "$work/corpus/train/ham.mbox" >/dev/null
  local before after
  before=$(stat -c %s "$dir/data/letterbox.redb")
  python3 $py train "$imap" >/dev/null
  if [[ $learn == true ]]; then
    for _ in $(seq 600); do
      "$BIN" spam status alice@home.arpa --config "$dir/letterbox.toml" | grep -q " 0 training events queued" && break
      sleep 1
    done
    "$BIN" spam status alice@home.arpa --config "$dir/letterbox.toml"
  fi
  after=$(stat -c %s "$dir/data/letterbox.redb")
  local c0 c1
  c0=$(cpu_ms "$pid")
  python3 $py deliver "$smtp" "$work/corpus/test/spam.mbox" >/dev/null
  python3 $py deliver "$smtp" "$work/corpus/test/ham.mbox" >/dev/null
  c1=$(cpu_ms "$pid")
  echo "learn=$learn: daemon CPU $(((c1 - c0) * 1000 / (2 * N_TEST))) µs per test message delivered; peak RSS $(awk '/VmHWM/{print $2}' /proc/$pid/status) KiB"
  if [[ $learn == true ]]; then
    echo "store growth from training (token statistics and training state): $((after - before)) bytes"
    python3 $py count "$imap" 100000
  fi
  kill "$pid"
  wait "$pid" 2>/dev/null || true
}

echo "corpus: generated, $N_TRAIN spam + $N_TRAIN ham to train, $N_TEST + $N_TEST held out"
run true
run false

if command -v sa-learn >/dev/null; then
  sa="$work/sa"
  mkdir -p "$sa"
  printf 'bayes_path %s/bayes\nuse_bayes 1\nbayes_auto_learn 0\nskip_rbl_checks 1\n' "$sa" >"$sa/user_prefs"
  sa-learn -p "$sa/user_prefs" --dbpath "$sa" --spam --mbox "$work/corpus/train/spam.mbox" >/dev/null
  sa-learn -p "$sa/user_prefs" --dbpath "$sa" --ham --mbox "$work/corpus/train/ham.mbox" >/dev/null
  for class in spam ham; do
    /usr/bin/time -f "%U" -o "$sa/time-$class" spamassassin -L -p "$sa/user_prefs" --mbox <"$work/corpus/test/$class.mbox" >"$sa/out-$class.mbox" 2>/dev/null
  done
  python3 - "$sa" "$N_TEST" <<'EOF'
import mailbox, re, sys
sa, n = sys.argv[1], int(sys.argv[2])
def stats(cls):
    flagged = bayes95 = 0
    for m in mailbox.mbox("%s/out-%s.mbox" % (sa, cls)):
        st = str(m.get("X-Spam-Status", "")).replace("\n", " ")
        flagged += st.startswith("Yes")
        bayes95 += bool(re.search(r"BAYES_(95|99|999)\b", st))
    return flagged, bayes95
sf, sb = stats("spam")
hf, hb = stats("ham")
cpu = sum(float(open("%s/time-%s" % (sa, c)).read().split()[-1]) for c in ("spam", "ham"))
print("spamassassin (score >= 5): spam caught %.2f %%, ham wrongly flagged %.2f %%" % (100.0 * sf / n, 100.0 * hf / n))
print("spamassassin (Bayes >= 0.95 alone): spam %.2f %%, ham %.2f %%" % (100.0 * sb / n, 100.0 * hb / n))
print("spamassassin: %.1f ms CPU per message (one process for the whole mbox)" % (1000.0 * cpu / (2 * n)))
EOF
else
  echo "spamassassin: not installed (apt-get install spamassassin)"
fi
