#!/usr/bin/env bash
# Issue 2 §9 figures for the release binary: size, time from `serve` to ready (first
# start and restart, median of 5), idle RSS, and the store throughput benchmark.
# Usage: bash benches/measure.sh     (builds the release binary if needed)
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release --locked >/dev/null 2>&1 || cargo build --release --locked
BIN=target/release/letterbox
work=$(mktemp -d)
trap 'pkill -f "$work/letterbox.toml" 2>/dev/null || true; rm -rf "$work"' EXIT

port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
config() {
  cat > "$work/letterbox.toml" <<TOML
[server]
data_dir = "$work/data"
[listen]
smtp = "127.0.0.1:$(port)"
submission = "127.0.0.1:$(port)"
submissions = "127.0.0.1:$(port)"
imap = "127.0.0.1:$(port)"
imaps = "127.0.0.1:$(port)"
pop3 = "127.0.0.1:$(port)"
pop3s = "127.0.0.1:$(port)"
TOML
}

# Starts serve, waits for the ready line; sets $pid and $ms (spawn to ready).
start() {
  local t0 t1
  t0=$(date +%s%N)
  RUST_LOG=info "$BIN" serve --config "$work/letterbox.toml" >"$work/out" 2>"$work/err" &
  pid=$!
  for _ in $(seq 1 3000); do
    grep -q "letterbox ready" "$work/err" 2>/dev/null && break
    sleep 0.001
  done
  t1=$(date +%s%N)
  ms=$(( (t1 - t0) / 1000000 ))
}
stop() { kill -TERM "$pid"; wait "$pid" || true; }
median() { sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }

echo "binary: $(stat -c %s "$BIN") bytes ($(du -h "$BIN" | cut -f1)), $(file -b "$BIN" | cut -d, -f1-2)"

first=(); again=()
for _ in 1 2 3 4 5; do
  rm -rf "$work/data"; config
  start; first+=("$ms"); stop
  start; again+=("$ms"); stop
done
echo "serve to ready, first start (certificate + first account): median $(printf '%s\n' "${first[@]}" | median) ms  (${first[*]})"
echo "serve to ready, restart: median $(printf '%s\n' "${again[@]}" | median) ms  (${again[*]})"

start
sleep 2
echo "idle RSS after start: $(awk '/VmRSS/ {print $2, $3}' /proc/$pid/status)"
stop

cargo bench --bench store --locked 2>/dev/null | grep -E "store deliveries|group commit"
