#!/usr/bin/env bash
# Issue 15 figures: time and peak RSS of `letterbox backup` (plain and encrypted) and of
# `backup --verify` and `restore` for a store of about 1 GB, and the backup's size.
# The store is made by the existing loader (`letterbox debug-store-load`): messages of
# SIZE bytes whose body is one line repeated, so zstd compresses them far better than
# real mail: the size figure is a lower bound, the times are what matters.
#
#   bash benches/backup.sh [MB] [SIZE]     (default 1024 MB of 32768-byte messages)
#
# Builds the release binary if needed (BIN=path uses another one).
set -euo pipefail
cd "$(dirname "$0")/.."
if [[ -z "${BIN:-}" ]]; then
  cargo build --release --locked >/dev/null 2>&1 || cargo build --release --locked
  BIN=target/release/letterbox
fi
MB=${1:-1024}
SIZE=${2:-32768}
work=$(mktemp -d "${TMPDIR:-/var/tmp}/lb-backup-bench.XXXXXX")
trap 'rm -rf "$work"' EXIT
printf '[server]\ndata_dir = "%s/data"\n' "$work" >"$work/letterbox.toml"
printf '[server]\ndata_dir = "%s/restored"\n' "$work" >"$work/restore.toml"
echo "a passphrase for the benchmark" >"$work/pass"
writers=4
per=$((MB * 1024 * 1024 / SIZE / writers))

measure() { # label, command...: prints wall time and peak RSS
  local label=$1
  shift
  /usr/bin/time -f "$label: %e s wall, %U s user, peak RSS %M KiB" "$@" >"$work/out" 2>"$work/err" || {
    cat "$work/out" "$work/err" >&2
    exit 1
  }
  grep -v '^letterbox: WARNING' "$work/err" | tail -n1
}

echo "store: $writers writers x $per messages of $SIZE bytes"
"$BIN" debug-store-load --data-dir "$work/data" --writers $writers --messages $per --size "$SIZE" --min-free 0 | tail -n1
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
