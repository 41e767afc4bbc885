#!/usr/bin/env bash
# Soak run (issue 8 §5): the daemon under mixed traffic from the Rust load generator
# (benches/loadgen.rs `soak`: SMTP ingest, IMAP fetch/store/expunge, POP3 RETR/DELE, IDLE
# clients, wrong-password logins) for SECONDS, sampling its RSS, open file descriptors and
# CPU time every SOAK_INTERVAL seconds. Writes benches/soak-results.md (SOAK_OUT).
#
# Usage: bash benches/soak.sh [SECONDS]          (default 180; longer by hand, e.g. 3600)
# Knobs: SOAK_PROFILE=debug|release (default debug: reuses the build `cargo test` made;
#        release for figures worth quoting), SOAK_INTERVAL=5, SOAK_OUT=benches/soak-results.md
#
# It fails (exit 1) when:
#   - memory keeps growing: the median RSS of the last third of the samples exceeds the
#     median of the first third x 1.5 + 8 MiB;
#   - file descriptors leak: 10 s after the load stops the daemon holds more than 2 fds
#     above its count before the load, or the last third's median exceeds the first
#     third's by more than 16;
#   - the daemon dies, logs a panic, the load generator saw an error (a refused or
#     unanswered operation), or `letterbox status` fails afterwards.
# Everything is bounded: the load by SECONDS, each server reply by 60 s (loadgen), the
# whole script by SECONDS + 300 s.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
SECS=${1:-180}
PROFILE=${SOAK_PROFILE:-debug}
INTERVAL=${SOAK_INTERVAL:-5}
OUT=${SOAK_OUT:-$ROOT/benches/soak-results.md}
TARGET=${CARGO_TARGET_DIR:-$ROOT/target}
PASS=soak-password-1
USERS=4

step() { printf '==> %s\n' "$*" >&2; }
die() {
  echo "soak.sh: $*" >&2
  exit 1
}

flags=(--locked)
[[ $PROFILE == release ]] && flags+=(--release)
step "build ($PROFILE)"
cargo build "${flags[@]}" --bin letterbox >&2
LOADGEN=$(cargo build "${flags[@]}" --bench loadgen --message-format=json 2>/dev/null |
  python3 -c 'import sys, json
exe = [m.get("executable") for m in map(json.loads, sys.stdin)
       if m.get("reason") == "compiler-artifact" and m["target"]["name"] == "loadgen"]
print(exe[-1] if exe else "")')
[[ -x $LOADGEN ]] || die "loadgen binary not found"
BIN=$TARGET/$PROFILE/letterbox
[[ -x $BIN ]] || die "$BIN not found"

work=$(mktemp -d "${TMPDIR:-/tmp}/letterbox-soak.XXXXXX")
LB_PID=
DNS_PID=
SAMPLER_PID=
cleanup() {
  set +e
  [[ -n $SAMPLER_PID ]] && kill "$SAMPLER_PID" 2>/dev/null
  [[ -n $LB_PID ]] && kill -TERM "$LB_PID" 2>/dev/null && wait "$LB_PID" 2>/dev/null
  [[ -n $DNS_PID ]] && kill "$DNS_PID" 2>/dev/null && wait "$DNS_PID" 2>/dev/null
  rm -rf "$work"
}
trap cleanup EXIT

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

# The MX listener verifies senders (SPF, DKIM, DMARC) through DNS; a loopback dnsmasq
# answers NXDOMAIN at once, so no lookup waits on the machine's network.
DNS=$(free_port)
/usr/sbin/dnsmasq --no-resolv --no-hosts --keep-in-foreground --conf-file=/dev/null \
  --listen-address=127.0.0.1 --bind-interfaces --port="$DNS" --address='/#/' \
  >"$work/dnsmasq.log" 2>&1 &
DNS_PID=$!

declare -A P
for s in smtp submission submissions imap imaps pop3 pop3s; do P[$s]=$(free_port); done
cat >"$work/letterbox.toml" <<TOML
[server]
data_dir = "$work/data"
[listen]
smtp = "127.0.0.1:${P[smtp]}"
submission = "127.0.0.1:${P[submission]}"
submissions = "127.0.0.1:${P[submissions]}"
imap = "127.0.0.1:${P[imap]}"
imaps = "127.0.0.1:${P[imaps]}"
pop3 = "127.0.0.1:${P[pop3]}"
pop3s = "127.0.0.1:${P[pop3s]}"
[dns]
nameservers = ["127.0.0.1:$DNS"]
TOML

step "start letterbox"
RUST_LOG=info "$BIN" serve --config "$work/letterbox.toml" >/dev/null 2>"$work/log" &
LB_PID=$!
for _ in $(seq 1 600); do
  grep -q "letterbox ready" "$work/log" 2>/dev/null && break
  kill -0 "$LB_PID" 2>/dev/null || die "letterbox exited: $(cat "$work/log")"
  sleep 0.1
done
grep -q "letterbox ready" "$work/log" || die "letterbox not ready after 60 s"
for i in $(seq 1 $USERS); do
  echo "$PASS" | "$BIN" user add "soak$i@home.arpa" --password-stdin --config "$work/letterbox.toml" >/dev/null
done

# One sample: seconds since start, VmRSS (KiB), open fds, utime+stime (clock ticks).
sample() {
  local rss fds cpu
  rss=$(awk '/^VmRSS:/ {print $2}' "/proc/$LB_PID/status" 2>/dev/null || echo 0)
  fds=$(find "/proc/$LB_PID/fd" -mindepth 1 -maxdepth 1 2>/dev/null | wc -l)
  cpu=$(awk '{sub(/.*\) /, ""); print $12 + $13}' "/proc/$LB_PID/stat" 2>/dev/null || echo 0)
  echo "$SECONDS $rss $fds $cpu"
}
sleep 2
BASE_FDS=$(sample | cut -d' ' -f3)
START=$(sample)

step "soak for $SECS s (samples every $INTERVAL s)"
(
  while kill -0 "$LB_PID" 2>/dev/null; do
    sample
    sleep "$INTERVAL"
  done
) >"$work/samples" &
SAMPLER_PID=$!
set +e
timeout $((SECS + 240)) "$LOADGEN" soak --seconds "$SECS" --pass "$PASS" --users $USERS \
  --smtp-port "${P[smtp]}" --submission-port "${P[submission]}" \
  --imap-port "${P[imap]}" --pop3-port "${P[pop3]}" >"$work/loadgen.json" 2>"$work/loadgen.err"
LOADGEN_RC=$?
set -e
kill "$SAMPLER_PID" 2>/dev/null || true
wait "$SAMPLER_PID" 2>/dev/null || true
SAMPLER_PID=
END=$(sample)
# The connections close; the fds must come back to where they were.
for _ in $(seq 1 20); do
  (($(sample | cut -d' ' -f3) <= BASE_FDS + 2)) && break
  sleep 0.5
done
AFTER=$(sample)
ALIVE=yes
kill -0 "$LB_PID" 2>/dev/null || ALIVE=no
STATUS_OK=yes
"$BIN" status --config "$work/letterbox.toml" >"$work/status" 2>&1 || STATUS_OK=no
PANICS=$(grep -c panicked "$work/log" || true)
CLK_TCK=$(getconf CLK_TCK)
MACHINE="$(nproc) CPUs, $(awk -F': ' '/^model name/ {print $2; exit}' /proc/cpuinfo), $(awk '/^MemTotal/ {printf "%.1f GiB RAM", $2/1048576}' /proc/meminfo), $(uname -sr), load average $(cut -d' ' -f1-3 /proc/loadavg)"

export SECS INTERVAL PROFILE LOADGEN_RC START END AFTER BASE_FDS ALIVE STATUS_OK PANICS CLK_TCK MACHINE OUT
export WORK=$work
python3 - <<'PY'
import json, os, statistics, sys, datetime
env = os.environ
rows = []
for line in open(os.path.join(env["WORK"], "samples")):
    p = line.split()
    if len(p) == 4 and p[1] != "0":
        rows.append(tuple(int(x) for x in p))
try:
    load = json.loads(open(os.path.join(env["WORK"], "loadgen.json")).read().strip().splitlines()[-1])
except Exception:
    load = {}
err = open(os.path.join(env["WORK"], "loadgen.err")).read()
start, end, after = ([int(x) for x in env[k].split()] for k in ("START", "END", "AFTER"))
base_fds = int(env["BASE_FDS"])
tck = int(env["CLK_TCK"])
third = max(1, len(rows) // 3)
first, last = rows[:third], rows[-third:]
med = lambda xs: statistics.median(xs) if xs else 0
rss_first, rss_last = med([r[1] for r in first]), med([r[1] for r in last])
fds_first, fds_last = med([r[2] for r in first]), med([r[2] for r in last])
rss_peak = max([r[1] for r in rows] + [start[1], end[1]])
fds_peak = max([r[2] for r in rows] + [start[2], end[2]])
cpu_s = (end[3] - start[3]) / tck
msgs = load.get("smtp_accepted", 0)
cpu_ms_msg = cpu_s * 1000 / msgs if msgs else float("nan")
failures = []
rss_limit = rss_first * 1.5 + 8 * 1024
if len(rows) < 3:
    failures.append("fewer than 3 samples")
if rss_last > rss_limit:
    failures.append(f"RSS grew: last-third median {rss_last} KiB > first-third median {rss_first} KiB x 1.5 + 8 MiB")
if after[2] > base_fds + 2:
    failures.append(f"fds leaked: {after[2]} after the load, {base_fds} before")
if fds_last > fds_first + 16:
    failures.append(f"fds grew: last-third median {fds_last} > first-third median {fds_first} + 16")
if env["ALIVE"] != "yes":
    failures.append("the daemon died")
if env["PANICS"] != "0":
    failures.append(f"{env['PANICS']} panics in the daemon's log")
if env["LOADGEN_RC"] != "0" or not load:
    failures.append(f"loadgen exited with {env['LOADGEN_RC']}: {err.strip()[-500:]}")
elif load.get("errors", 0):
    failures.append(f"loadgen counted {load['errors']} errors: {err.strip()[-500:]}")
if env["STATUS_OK"] != "yes":
    failures.append("letterbox status failed after the soak")
if not msgs:
    failures.append("no message was delivered")
mib = lambda k: f"{k / 1024:.1f} MiB"
verdict = "PASS" if not failures else "FAIL"
secs = float(load.get("secs", env["SECS"]))
lines = [
    "# Soak results",
    "",
    f"`bash benches/soak.sh {env['SECS']}` ({env['PROFILE']} build), {datetime.datetime.utcnow():%Y-%m-%d %H:%M} UTC.",
    f"Machine: {env['MACHINE']}.",
    "",
    "Mixed traffic from `benches/loadgen.rs soak` (defaults: 2 SMTP clients delivering 4 KB",
    "messages with a 50 ms pause, 2 IMAP clients fetching/flagging/expunging, 2 POP3 clients",
    "RETR+DELE of up to 10, 4 IDLE clients, 1 client trying wrong passwords over IMAP, POP3 and SMTP AUTH),",
    f"sampled every {env['INTERVAL']} s ({len(rows)} samples).",
    "",
    f"**{verdict}**" + ("" if not failures else ": " + "; ".join(failures)),
    "",
    "| | start | end | peak | first-third median | last-third median |",
    "|---|---|---|---|---|---|",
    f"| RSS | {mib(start[1])} | {mib(end[1])} | {mib(rss_peak)} | {mib(rss_first)} | {mib(rss_last)} |",
    f"| open fds | {start[2]} | {end[2]} (after the load: {after[2]}) | {fds_peak} | {fds_first:g} | {fds_last:g} |",
    "",
    f"Rule: RSS last-third median <= first-third median x 1.5 + 8 MiB (here {mib(rss_limit)}); "
    f"fds back to within 2 of the {base_fds} before the load, and last-third median <= first-third + 16.",
    "",
    "| traffic | count | per second |",
    "|---|---|---|",
]
for k in ["smtp_accepted", "smtp_refused", "imap_fetches", "imap_bodies", "imap_stores", "imap_expunged",
          "pop3_retr", "pop3_dele", "idle_pushes", "bad_logins_refused", "errors"]:
    v = load.get(k, 0)
    lines.append(f"| {k.replace('_', ' ')} | {v} | {v / secs:.1f} |")
lines += [
    "",
    f"CPU: {cpu_s:.1f} s (utime+stime) over {secs:.0f} s = {100 * cpu_s / secs:.0f} % of one core; "
    f"{cpu_ms_msg:.2f} ms per delivered message, all the other traffic included.",
    "",
]
# The RSS series, at most 24 points, so a slow climb can be seen.
step = max(1, len(rows) // 24)
series = ", ".join(f"{r[0] - rows[0][0]} s {r[1] / 1024:.0f}" for r in rows[::step])
lines += [f"RSS over time (MiB): {series}.", ""]
text = "\n".join(lines)
open(env["OUT"], "w").write(text)
print(text)
sys.exit(0 if not failures else 1)
PY
