#!/usr/bin/env bash
# The comparison benchmark (issues 3 §6, 5 §6, 6 §5, 8 §4): Letterbox against Postfix delivering
# over LMTP to Dovecot, both from Debian packages, on loopback, in the same run, with the
# same load generator (benches/loadgen.rs) and the same data. Writes benches/results.md.
#
# Usage: bash benches/compare.sh        (as root: it installs the peers with apt-get)
# Raw results are left in ${BENCH_DIR:-/tmp}/letterbox-compare-raw/.
# Knobs (environment): RUNS=5 MESSAGES=2000 SIZE=4096 CONNECTIONS=16 LOGINS=100
#   LOGIN_CLIENTS=8 RETR_CLIENTS=4 IMAP_MESSAGES=10000 IDLE_CLIENTS=100 IDLE_USERS=10
#   PUSHES=20 BENCH_DIR=/tmp (where both servers keep their data)
#   LB_ENV="NAME=VALUE ..." (extra environment for `letterbox serve`, e.g. malloc tuning)
#
# Each measurement runs RUNS times per server, alternating servers, and the table gives
# the median and the min–max, with the servers' CPU time per message or login. RSS: Letterbox's VmRSS; the peers' PSS summed over every
# Postfix and Dovecot process (smaps_rollup), idle and the peak under each load (sampled
# every 100 ms). Bounded: every load is under `timeout`, the whole run under DEADLINE s.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
# shellcheck source=benches/peers/setup.sh
source benches/peers/setup.sh

RUNS=${RUNS:-5}
MESSAGES=${MESSAGES:-2000}
SIZE=${SIZE:-4096}
CONNECTIONS=${CONNECTIONS:-16}
LOGINS=${LOGINS:-100}
LOGIN_CLIENTS=${LOGIN_CLIENTS:-8}
RETR_CLIENTS=${RETR_CLIENTS:-4}
IMAP_MESSAGES=${IMAP_MESSAGES:-10000}
IDLE_CLIENTS=${IDLE_CLIENTS:-100}
IDLE_USERS=${IDLE_USERS:-10}
PUSHES=${PUSHES:-20}
SEARCH_WORDS=cherry,loadgen,zebra
DEADLINE=${DEADLINE:-1500}
LB_ENV=${LB_ENV:-}
DOMAIN=bench.test
PASS=bench-password-1
TARGET=${CARGO_TARGET_DIR:-$ROOT/target}

step() { printf '==> %s\n' "$*" >&2; }
check_deadline() {
  if ((SECONDS > DEADLINE)); then
    echo "compare.sh: over the ${DEADLINE} s budget, giving up" >&2
    exit 1
  fi
}

step "build (release)"
cargo build --release --locked --bin letterbox >&2
LOADGEN=$(cargo bench --locked --bench loadgen --no-run --message-format=json 2>/dev/null |
  jq -r 'select(.reason == "compiler-artifact" and .target.name == "loadgen") | .executable' |
  tail -1)
[[ -x $LOADGEN ]] || { echo "loadgen binary not found" >&2; exit 1; }
BIN=$TARGET/release/letterbox

step "peers: install"
peers_install

work=$(mktemp -d "${BENCH_DIR:-/tmp}/letterbox-compare.XXXXXX")
RAW=${BENCH_DIR:-/tmp}/letterbox-compare-raw
LB_PID=
SAMPLER_PID=
DNS_PID=
cleanup() {
  set +e
  [[ -n $DNS_PID ]] && kill "$DNS_PID" 2>/dev/null && wait "$DNS_PID" 2>/dev/null
  [[ -n $SAMPLER_PID ]] && kill "$SAMPLER_PID" 2>/dev/null && wait "$SAMPLER_PID" 2>/dev/null
  if [[ -n $LB_PID ]] && kill -0 "$LB_PID" 2>/dev/null; then
    kill -TERM "$LB_PID"
    wait "$LB_PID" 2>/dev/null
  fi
  peers_stop "$work/peers"
  # Keep the raw results (loadgen JSON lines, memory and CPU samples) for inspection.
  rm -rf "$RAW"
  cp -r "$work/res" "$RAW" 2>/dev/null
  rm -rf "$work"
}
trap cleanup EXIT
chmod 755 "$work"
mkdir -p "$work/lb" "$work/peers" "$work/res"

# --- Letterbox: config, accounts, start -------------------------------------------------
LB_SMTP=$(free_port)
LB_POP3=$(free_port)
LB_IMAP=$(free_port)
# Letterbox verifies SPF/DKIM/ARC/DMARC on its MX listener (the peers here do not): give
# it a DNS server on loopback that answers NXDOMAIN at once, as a real resolver would for
# the test domain, so the lookups cost a loopback round trip, not resolver timeouts.
LB_DNS=$(free_port)
/usr/sbin/dnsmasq --no-resolv --no-hosts --keep-in-foreground --conf-file=/dev/null \
  --listen-address=127.0.0.1 --bind-interfaces --port="$LB_DNS" --address='/#/' \
  >"$work/dnsmasq.log" 2>&1 &
DNS_PID=$!
cat >"$work/lb/letterbox.toml" <<EOF
[server]
data_dir = "$work/lb/data"
domains = ["$DOMAIN"]
[listen]
smtp = "127.0.0.1:$LB_SMTP"
submission = "127.0.0.1:$(free_port)"
submissions = "127.0.0.1:$(free_port)"
imap = "127.0.0.1:$LB_IMAP"
imaps = "127.0.0.1:$(free_port)"
pop3 = "127.0.0.1:$LB_POP3"
pop3s = "127.0.0.1:$(free_port)"
[dns]
nameservers = ["127.0.0.1:$LB_DNS"]
[limits]
# Every benchmark client comes from 127.0.0.1: room for the $IDLE_CLIENTS idlers.
max_connections_per_ip = 400
max_connections = 400
EOF
LB_CFG=$work/lb/letterbox.toml

step "accounts (r1..r$RETR_CLIENTS receive the ingest; l1..l$LOGIN_CLIENTS log in; i1 gets $IMAP_MESSAGES messages; idle1..idle$IDLE_USERS idle)"
peers_configure "$work/peers" "$DOMAIN"
PHC=$("$LOADGEN" hash --password "$PASS")
accounts=("i1@$DOMAIN")
for i in $(seq 1 "$RETR_CLIENTS"); do accounts+=("r$i@$DOMAIN"); done
for i in $(seq 1 "$LOGIN_CLIENTS"); do accounts+=("l$i@$DOMAIN"); done
for i in $(seq 1 "$IDLE_USERS"); do accounts+=("idle$i@$DOMAIN"); done
for a in "${accounts[@]}"; do
  printf '%s\n' "$PASS" | "$BIN" user add "$a" --password-stdin --config "$LB_CFG" >/dev/null
  peers_add_user "$work/peers" "$a" "$PHC"
done

step "start Letterbox and the peers"
# shellcheck disable=SC2086 # LB_ENV is a list of NAME=VALUE words
env $LB_ENV "$BIN" serve --config "$LB_CFG" >"$work/lb/out" 2>"$work/lb/err" &
LB_PID=$!
for _ in $(seq 1 300); do
  grep -q "letterbox ready" "$work/lb/err" 2>/dev/null && break
  kill -0 "$LB_PID" || { cat "$work/lb/err" >&2; exit 1; }
  sleep 0.05
done
wait_port "$LB_SMTP"
wait_port "$LB_POP3"
wait_port "$LB_IMAP"
peers_start "$work/peers"


peer_maildirs=()
for i in $(seq 1 "$RETR_CLIENTS"); do
  peer_maildirs+=(--count-maildir "$work/peers/mail/$DOMAIN/r$i/Maildir")
done

# --- memory ----------------------------------------------------------------------------
mem_lb() { awk '/^VmRSS:/ {print $2}' "/proc/$LB_PID/status"; }
mem_peers() {
  local p
  for p in $(peers_pids "$work/peers"); do
    awk '/^Pss:/ {print $2}' "/proc/$p/smaps_rollup" 2>/dev/null || true
  done | awk '{s += $1} END {print s + 0}'
}
# CPU time used so far, in clock ticks: Letterbox's utime+stime; for the peers, that of
# every live process plus what the masters collected from exited children.
cpu_lb() { awk '{print $14 + $15}' "/proc/$LB_PID/stat"; }
cpu_peers() {
  local p
  for p in $(peers_pids "$work/peers"); do
    # Fields after the parenthesised name: 14 utime 15 stime 16 cutime 17 cstime.
    sed 's/^.*) //' "/proc/$p/stat" 2>/dev/null | awk '{print $12 + $13 + $14 + $15}' || true
  done | awk '{s += $1} END {print s + 0}'
}
TICKS=$(getconf CLK_TCK)
# loadgen's imap-idle runs these (bash -c) to read the memory while its clients idle.
export work LB_PID
export -f mem_lb mem_peers peers_pids
# sampler SERVER OUT: writes the peak (kB) every 100 ms until killed (at most 10 min).
sampler() {
  local fn=$1 out=$2 peak=0 v i
  for i in $(seq 1 6000); do
    v=$($fn)
    # Written whole, then renamed: a kill never leaves a half-written file.
    ((v > peak)) && peak=$v && echo "$peak" >"$out.tmp" && mv "$out.tmp" "$out"
    sleep 0.1
  done
}
# measure NAME SERVER CMD...: runs the load under the sampler, appends the JSON result
# and the peak memory to $work/res/NAME.SERVER.{jsonl,mem}.
measure() {
  local name=$1 server=$2 fn peak cpu0 cpu1
  shift 2
  check_deadline
  fn=mem_lb
  [[ $server == peers ]] && fn=mem_peers
  cpu0=$(cpu_"$server")
  rm -f "$work/peak" "$work/peak.tmp"
  sampler "$fn" "$work/peak" &
  SAMPLER_PID=$!
  timeout 120 "$@" >>"$work/res/$name.$server.jsonl" 2>>"$work/res/log"
  cpu1=$(cpu_"$server")
  echo $(((cpu1 - cpu0) * 1000 / TICKS)) >>"$work/res/$name.$server.cpu_ms"
  kill "$SAMPLER_PID" 2>/dev/null || true
  wait "$SAMPLER_PID" 2>/dev/null || true
  SAMPLER_PID=
  peak=$(cat "$work/peak" 2>/dev/null || true)
  [[ -n $peak ]] || peak=$($fn)
  echo "$peak" >>"$work/res/$name.$server.mem"
  tail -1 "$work/res/log" >&2
}

# Idle memory: both servers up, accounts created, no load yet (median of 5 samples).
for i in 1 2 3 4 5; do
  mem_lb >>"$work/res/idle.lb.mem"
  mem_peers >>"$work/res/idle.peers.mem"
  sleep 0.2
done

# order RUN: which server goes first alternates from run to run.
order() { if (($1 % 2)); then echo lb peers; else echo peers lb; fi; }

# --- the runs ---------------------------------------------------------------------------
step "SMTP ingest: $RUNS x $MESSAGES messages of $SIZE bytes over $CONNECTIONS sessions"
for r in $(seq 1 "$RUNS"); do
  for s in $(order "$r"); do
    if [[ $s == lb ]]; then
      measure ingest lb "$LOADGEN" smtp-ingest --port "$LB_SMTP" --connections "$CONNECTIONS" \
        --messages "$MESSAGES" --size "$SIZE" --to "r{}@$DOMAIN" --rcpt-users "$RETR_CLIENTS" \
        --count-control-socket "$work/lb/data/control.sock" --wait-secs 100
    else
      measure ingest peers "$LOADGEN" smtp-ingest --port "$PEER_SMTP_PORT" \
        --connections "$CONNECTIONS" --messages "$MESSAGES" --size "$SIZE" --to "r{}@$DOMAIN" \
        --rcpt-users "$RETR_CLIENTS" "${peer_maildirs[@]}" --wait-secs 100
    fi
  done
done

step "POP3 RETR: $RUNS x every message of r1..r$RETR_CLIENTS, one client each"
for r in $(seq 1 "$RUNS"); do
  for s in $(order "$r"); do
    port=$LB_POP3
    [[ $s == peers ]] && port=$PEER_POP3_PORT
    measure retr "$s" "$LOADGEN" pop3-retr --port "$port" --user "r{}@$DOMAIN" \
      --users "$RETR_CLIENTS" --pass "$PASS" --clients "$RETR_CLIENTS"
  done
done

step "POP3 logins: $RUNS x $LOGINS logins from $LOGIN_CLIENTS clients"
for r in $(seq 1 "$RUNS"); do
  for s in $(order "$r"); do
    port=$LB_POP3
    [[ $s == peers ]] && port=$PEER_POP3_PORT
    measure logins "$s" "$LOADGEN" pop3-logins --port "$port" --user "l{}@$DOMAIN" \
      --users "$LOGIN_CLIENTS" --pass "$PASS" --count "$LOGINS" --concurrency "$LOGIN_CLIENTS"
  done
done

step "IMAP: fill i1 with $IMAP_MESSAGES messages through each server's SMTP ingest"
measure fill lb "$LOADGEN" smtp-ingest --port "$LB_SMTP" --connections "$CONNECTIONS" \
  --messages "$IMAP_MESSAGES" --size "$SIZE" --to "i{}@$DOMAIN" --rcpt-users 1 \
  --count-control-socket "$work/lb/data/control.sock" --wait-secs 110
measure fill peers "$LOADGEN" smtp-ingest --port "$PEER_SMTP_PORT" --connections "$CONNECTIONS" \
  --messages "$IMAP_MESSAGES" --size "$SIZE" --to "i{}@$DOMAIN" --rcpt-users 1 \
  --count-maildir "$work/peers/mail/$DOMAIN/i1/Maildir" --wait-secs 110

imap_port() { if [[ $1 == lb ]]; then echo "$LB_IMAP"; else echo "$PEER_IMAP_PORT"; fi; }
# Thunderbird's first-sync items (with the headers it shows in the message list), for the
# COMPRESS=DEFLATE rows (RFC 4978): the same FETCH plain and compressed.
TB_ITEMS='(UID FLAGS INTERNALDATE RFC822.SIZE ENVELOPE BODYSTRUCTURE BODY.PEEK[HEADER])'

step "IMAP first sync, download, SEARCH TEXT, SORT/THREAD, STORE: $RUNS x, i1's $IMAP_MESSAGES messages"
for r in $(seq 1 "$RUNS"); do
  for s in $(order "$r"); do
    port=$(imap_port "$s")
    measure sync "$s" "$LOADGEN" imap-first-sync --port "$port" --user "i1@$DOMAIN" --pass "$PASS"
    measure hsync "$s" "$LOADGEN" imap-first-sync --port "$port" --user "i1@$DOMAIN" \
      --pass "$PASS" --items "$TB_ITEMS"
    measure zsync "$s" "$LOADGEN" imap-first-sync --port "$port" --user "i1@$DOMAIN" \
      --pass "$PASS" --items "$TB_ITEMS" --compress
    measure download "$s" "$LOADGEN" imap-download --port "$port" --user "i1@$DOMAIN" --pass "$PASS"
    measure search "$s" "$LOADGEN" imap-search-text --port "$port" --user "i1@$DOMAIN" \
      --pass "$PASS" --words "$SEARCH_WORDS"
    measure sortthread "$s" "$LOADGEN" imap-sort-thread --port "$port" --user "i1@$DOMAIN" \
      --pass "$PASS"
    measure store "$s" "$LOADGEN" imap-store --port "$port" --user "i1@$DOMAIN" --pass "$PASS"
  done
done

step "IMAP IDLE: $RUNS x $IDLE_CLIENTS idling clients, $PUSHES pushes each"
for r in $(seq 1 "$RUNS"); do
  for s in $(order "$r"); do
    if [[ $s == lb ]]; then
      deliver=(--deliver-port "$LB_SMTP")
    else
      # Straight into Dovecot's LMTP: the peers' store ingest, without Postfix's queue.
      deliver=(--deliver-port "$PEER_LMTP_PORT" --lmtp)
    fi
    # Named "idlers": "idle.*.mem" holds the memory before any load.
    measure idlers "$s" "$LOADGEN" imap-idle --port "$(imap_port "$s")" --user "idle{}@$DOMAIN" \
      --users "$IDLE_USERS" --pass "$PASS" --clients "$IDLE_CLIENTS" --mem-cmd "mem_$s" \
      --deliveries "$PUSHES" "${deliver[@]}"
  done
done

# --- the table --------------------------------------------------------------------------
# stats FILE: "median min max" of the numbers in FILE (one per line).
stats() { grep -E '^[0-9.]+$' "$1" | sort -g | awk '{a[NR]=$1} END {printf "%s %s %s\n", a[int((NR+1)/2)], a[1], a[NR]}'; }
# field NAME SERVER KEY: extracts KEY from every JSON result into a numbers file.
field() {
  local f="$work/res/$1.$2.$3"
  jq -r ".$3 // empty" "$work/res/$1.$2.jsonl" >"$f"
  echo "$f"
}
# per_unit NAME SERVER KEY: CPU milliseconds per unit (KEY of each JSON result), per run.
per_unit() {
  local f="$work/res/$1.$2.cpu_per_$3"
  jq -r ".$3" "$work/res/$1.$2.jsonl" | paste - "$work/res/$1.$2.cpu_ms" |
    awk '{ if ($1 > 0) printf "%.4f\n", $2 / $1 }' >"$f"
  echo "$f"
}
# row LABEL UNIT SCALE LB_FILE PEER_FILE: one Markdown row; values divided by SCALE.
row() {
  local label=$1 unit=$2 scale=$3 a b
  if [[ ! -s $4 || ! -s $5 ]]; then
    echo "| $label | n/a | n/a | | | |"
    echo "compare.sh: no data for \"$label\" ($4, $5)" >&2
    return 0
  fi
  read -r -a a <<<"$(stats "$4")"
  read -r -a b <<<"$(stats "$5")"
  awk -v l="$label" -v u="$unit" -v s="$scale" \
    -v am="${a[0]}" -v alo="${a[1]}" -v ahi="${a[2]}" \
    -v bm="${b[0]}" -v blo="${b[1]}" -v bhi="${b[2]}" 'BEGIN {
      f = (am / s >= 100) ? "%.0f" : (am / s >= 1 ? "%.1f" : "%.2f")
      printf "| %s | " f " %s | " f " %s | %.2f | " f "–" f " | " f "–" f " |\n",
        l, am / s, u, bm / s, u, (bm > 0 ? am / bm : 0), alo / s, ahi / s, blo / s, bhi / s
    }'
}

cpu=$(awk -F': ' '/^model name/ {print $2; exit}' /proc/cpuinfo)
fs=$(df -T "$work" | awk 'NR == 2 {print $2 " on " $1}')
pf_version=$(postconf -c "$work/peers/postfix" -h mail_version 2>/dev/null || echo "?")
dc_version=$(dovecot --version 2>/dev/null | cut -d' ' -f1)
lb_version=$("$BIN" --version 2>/dev/null || echo letterbox)
lb_commit=$(git rev-parse --short HEAD 2>/dev/null || echo "?")
{
  echo "# Letterbox against Postfix + Dovecot"
  echo
  echo "Written by \`benches/compare.sh\` on $(date -u '+%Y-%m-%d %H:%M UTC'); $lb_version (commit $lb_commit),"
  echo "Postfix $pf_version delivering over LMTP to Dovecot $dc_version (Debian packages)."
  echo
  if [[ -n $LB_ENV ]]; then
    echo "Letterbox ran with this environment: \`$LB_ENV\`."
    echo
  fi
  echo "Machine: $(nproc) CPUs ($cpu), kernel $(uname -r), $(awk '/MemTotal/ {printf "%.0f GiB", $2/1048576}' /proc/meminfo) RAM;"
  echo "data on $fs. The machine is shared (other builds were running): read the min–max."
  echo
  echo "Each figure is the median of $RUNS runs per server (which server goes first alternates),"
  echo "both driven by the same client (\`benches/loadgen.rs\`) on loopback in plain text."
  echo "Ratio = Letterbox / peers (above 1 is better for rates, below 1 is better for memory)."
  echo
  echo "| metric | Letterbox | Postfix/Dovecot | ratio | Letterbox min–max | Postfix/Dovecot min–max |"
  echo "|---|---|---|---|---|---|"
  row "SMTP ingest, delivered msg/s ($CONNECTIONS sessions, $SIZE B)" "" 1 \
    "$(field ingest lb delivered_per_sec)" "$(field ingest peers delivered_per_sec)"
  row "SMTP ingest, accepted (250) msg/s" "" 1 \
    "$(field ingest lb accepted_per_sec)" "$(field ingest peers accepted_per_sec)"
  row "SMTP median time MAIL..250 per message" "ms" 1 \
    "$(field ingest lb median_latency_ms)" "$(field ingest peers median_latency_ms)"
  row "POP3 logins/s ($LOGIN_CLIENTS clients, USER/PASS/QUIT)" "" 1 \
    "$(field logins lb logins_per_sec)" "$(field logins peers logins_per_sec)"
  row "POP3 RETR msg/s ($RETR_CLIENTS clients: login, RETR all, QUIT)" "" 1 \
    "$(field retr lb messages_per_sec)" "$(field retr peers messages_per_sec)"
  row "POP3 RETR MB/s (same sessions)" "" 1 \
    "$(field retr lb mb_per_sec)" "$(field retr peers mb_per_sec)"
  row "POP3 RETR msg/s, after the logins" "" 1 \
    "$(field retr lb retr_messages_per_sec)" "$(field retr peers retr_messages_per_sec)"
  row "POP3 RETR MB/s, after the logins" "" 1 \
    "$(field retr lb retr_mb_per_sec)" "$(field retr peers retr_mb_per_sec)"
  row "server CPU per delivered message" "ms" 1 \
    "$(per_unit ingest lb accepted)" "$(per_unit ingest peers accepted)"
  row "server CPU per POP3 RETR message (with the logins)" "ms" 1 \
    "$(per_unit retr lb messages)" "$(per_unit retr peers messages)"
  row "server CPU per POP3 login" "ms" 1 \
    "$(per_unit logins lb ok)" "$(per_unit logins peers ok)"
  row "memory idle (after start, before load)" "MiB" 1024 \
    "$work/res/idle.lb.mem" "$work/res/idle.peers.mem"
  row "memory peak under SMTP ingest" "MiB" 1024 \
    "$work/res/ingest.lb.mem" "$work/res/ingest.peers.mem"
  row "memory peak under POP3 logins" "MiB" 1024 \
    "$work/res/logins.lb.mem" "$work/res/logins.peers.mem"
  row "memory peak under POP3 RETR" "MiB" 1024 \
    "$work/res/retr.lb.mem" "$work/res/retr.peers.mem"
  row "IMAP first sync of $IMAP_MESSAGES: SELECT (CONDSTORE) + UID FETCH summary" "s" 1 \
    "$(field sync lb sync_secs)" "$(field sync peers sync_secs)"
  row "IMAP first sync with headers (Thunderbird's items), plain: time" "s" 1 \
    "$(field hsync lb sync_secs)" "$(field hsync peers sync_secs)"
  row "IMAP first sync with headers, COMPRESS=DEFLATE: time" "s" 1 \
    "$(field zsync lb sync_secs)" "$(field zsync peers sync_secs)"
  row "IMAP first sync with headers, plain: bytes read from the socket" "MB" 1000000 \
    "$(field hsync lb wire_bytes)" "$(field hsync peers wire_bytes)"
  row "IMAP first sync with headers, COMPRESS=DEFLATE: bytes read from the socket" "MB" 1000000 \
    "$(field zsync lb wire_bytes)" "$(field zsync peers wire_bytes)"
  row "IMAP UID FETCH 1:* BODY.PEEK[] MB/s" "" 1 \
    "$(field download lb mb_per_sec)" "$(field download peers mb_per_sec)"
  row "IMAP UID SEARCH TEXT \"cherry\" (1 in 10 match)" "s" 1 \
    "$(field search lb cherry_secs)" "$(field search peers cherry_secs)"
  row "IMAP UID SEARCH TEXT \"loadgen\" (all match, in the header)" "s" 1 \
    "$(field search lb loadgen_secs)" "$(field search peers loadgen_secs)"
  row "IMAP UID SEARCH TEXT \"zebra\" (none match)" "s" 1 \
    "$(field search lb zebra_secs)" "$(field search peers zebra_secs)"
  row "IMAP UID SORT (DATE) UTF-8 ALL" "s" 1 \
    "$(field sortthread lb date_secs)" "$(field sortthread peers date_secs)"
  row "IMAP UID SORT (SUBJECT) UTF-8 ALL" "s" 1 \
    "$(field sortthread lb subject_secs)" "$(field sortthread peers subject_secs)"
  row "IMAP UID THREAD REFERENCES UTF-8 ALL" "s" 1 \
    "$(field sortthread lb thread_secs)" "$(field sortthread peers thread_secs)"
  row "IMAP UID STORE 1:* +FLAGS (\\Seen)" "s" 1 \
    "$(field store lb add_secs)" "$(field store peers add_secs)"
  row "IMAP UID STORE 1:* -FLAGS (\\Seen)" "s" 1 \
    "$(field store lb remove_secs)" "$(field store peers remove_secs)"
  row "IMAP IDLE push: end of DATA to EXISTS (median of $PUSHES)" "ms" 1 \
    "$(field idlers lb push_ms)" "$(field idlers peers push_ms)"
  row "IMAP IDLE push: 250 to EXISTS (median of $PUSHES)" "ms" 1 \
    "$(field idlers lb push_after_250_ms)" "$(field idlers peers push_after_250_ms)"
  row "memory with $IDLE_CLIENTS IMAP clients in IDLE" "MiB" 1024 \
    "$(field idlers lb mem_idle_kb)" "$(field idlers peers mem_idle_kb)"
  row "memory per IDLE client (above the memory before they connected)" "KiB" 1 \
    "$(field idlers lb per_client_kb)" "$(field idlers peers per_client_kb)"
  row "memory peak under IMAP first sync" "MiB" 1024 \
    "$work/res/sync.lb.mem" "$work/res/sync.peers.mem"
  row "memory peak under IMAP download" "MiB" 1024 \
    "$work/res/download.lb.mem" "$work/res/download.peers.mem"
  row "memory peak under IMAP SEARCH TEXT" "MiB" 1024 \
    "$work/res/search.lb.mem" "$work/res/search.peers.mem"
  row "memory peak under IMAP SORT/THREAD" "MiB" 1024 \
    "$work/res/sortthread.lb.mem" "$work/res/sortthread.peers.mem"
  echo
  echo "Set-up: each ingest run sends $MESSAGES distinct messages to r1..r$RETR_CLIENTS (round robin);"
  echo "\"delivered\" is timed from the first connection to the moment every accepted message is"
  echo "in its mailbox (Letterbox: the message counts of a \`user list\` request on its control socket;"
  echo "Dovecot: files in the Maildirs' new/ and cur/), both counted in-process by the load"
  echo "generator every 5 ms. Letterbox answers 250 only after the store commit is durable;"
  echo "Postfix answers 250 once its queue file is fsynced, and Dovecot's LMTP fsyncs each"
  echo "Maildir file (mail_fsync = optimized, the default). The phases run in this order:"
  echo "ingest, RETR, logins. Each RETR run downloads every message of r1..r$RETR_CLIENTS (all"
  echo "$((RUNS * MESSAGES)) once the ingest runs are done). The login accounts l1..l$LOGIN_CLIENTS are empty."
  echo "Both servers check passwords with argon2id at Letterbox's parameters"
  echo "(\`$(cut -d'$' -f1-4 <<<"$PHC")\`): the peers' passwd-file holds a hash made by"
  echo "Letterbox's own code (Dovecot verifies it with libsodium). Memory: Letterbox VmRSS;"
  echo "peers: PSS summed over every Postfix and Dovecot process, including the smtpd, cleanup,"
  echo "lmtp and pop3 processes that stay alive between loads. Server CPU: user+system time"
  echo "of Letterbox; of every Postfix and Dovecot process (with exited children), over the"
  echo "run, divided by its messages or logins (the load generator's own CPU is not counted)."
  echo
  echo "IMAP: after the POP3 phases, i1 gets $IMAP_MESSAGES messages of $SIZE B through each server's"
  echo "SMTP ingest (for the peers: Postfix, then LMTP into Dovecot's Maildir), then each run makes"
  echo "one client log in and do the first sync, the download, three SEARCH TEXT, UID SORT by date"
  echo "and by subject, UID THREAD REFERENCES and the two STORE commands on that INBOX (times exclude"
  echo "the login; Dovecot builds its sort data on the first SORT of a run, cached afterwards). IDLE: $IDLE_CLIENTS clients over the"
  echo "accounts idle1..idle$IDLE_USERS (Dovecot allows 10 per user and IP by default) SELECT INBOX"
  echo "and IDLE; memory is read once all idle. Then $PUSHES messages go one at a time to idle1:"
  echo "to Letterbox over SMTP on its MX listener (250 after the commit), to Dovecot over LMTP (250"
  echo "after the Maildir file is written), and the time until client 0 (on idle1) reads the EXISTS"
  echo "is taken from the end of DATA and from the 250 (0 when the EXISTS came first)."
  echo
  echo "COMPRESS=DEFLATE (RFC 4978): the first sync again with Thunderbird's items"
  echo "\`$TB_ITEMS\`, once plain and once after \`COMPRESS DEFLATE\`; bytes are those read"
  echo "from the TCP socket during the UID FETCH. Letterbox compresses at level 1 and"
  echo "sync-flushes each batch it writes; Dovecot runs its imap_zlib plugin at its default"
  echo "level (6). The client decompresses with Letterbox's DEFLATE layer (miniz_oxide)."
  if [[ -f benches/results-notes.md ]]; then
    echo
    cat benches/results-notes.md
  fi
} >"$work/results.md"
cp "$work/results.md" benches/results.md
cat benches/results.md
step "raw results: loadgen lines"
cat "$work/res/log" >&2
step "done in ${SECONDS} s"
