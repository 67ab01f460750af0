#!/usr/bin/env bash
# 1 GiB up and down over HTTPS with matching SHA-256 and the server's peak
# RSS under 64 MiB; a killed upload leaves no partial file and the previous
# version intact. (Labelled "big": run in the normal build, not under ASan.)
. "$(dirname "$0")/harness.sh"
cd "$T"
start_tlsgate b --set files.max_upload=2GiB
CA="$T/b/ca/ca.crt"
U="https://localhost:$PORT_b/files"

head -c $((1024 * 1024 * 1024)) /dev/urandom >big.bin
want=$(sha big.bin)
t0=$(date +%s%N)
curl -sS --cacert "$CA" -T big.bin "$U/big.bin" >/dev/null || fail "1 GiB upload"
t1=$(date +%s%N)
[ "$(sha "$T/b/files/big.bin")" = "$want" ] || fail "uploaded SHA-256 differs"
curl -sS --cacert "$CA" "$U/big.bin" -o down.bin || fail "1 GiB download"
t2=$(date +%s%N)
[ "$(sha down.bin)" = "$want" ] || fail "downloaded SHA-256 differs"
rss=$(awk '/VmHWM/ {print $2}' "/proc/$PID_b/status")
up=$(( 1024 * 1000 / ( (t1 - t0) / 1000000 ) ))
down=$(( 1024 * 1000 / ( (t2 - t1) / 1000000 ) ))
echo "measured: upload ${up} MiB/s, download ${down} MiB/s, server peak RSS ${rss} KiB"
[ "$rss" -lt $((64 * 1024)) ] || fail "server peak RSS ${rss} KiB is over 64 MiB"
pass "1 GiB each way, SHA-256 equal, peak RSS ${rss} KiB"
rm -f down.bin

# a killed upload: the old version stays, no temp file is left
echo "old version" >v.txt
curl -sS --cacert "$CA" -T v.txt "$U/v.txt" >/dev/null
curl -sS --cacert "$CA" --limit-rate 5M -T big.bin "$U/v.txt" >/dev/null 2>&1 &
cpid=$!
sleep 1
kill -9 "$cpid"; wait "$cpid" 2>/dev/null || true
assert_log "$T/b.log" "went away during the upload; nothing was stored" "the broken upload is logged"
[ "$(cat "$T/b/files/v.txt")" = "old version" ] || fail "the previous version was damaged"
[ -z "$(ls -A "$T/b/files" | grep tlsgate-upload)" ] || fail "a temp file was left behind"
[ "$(curl -sS --cacert "$CA" "$U/v.txt")" = "old version" ] || fail "GET after the broken upload"
pass "a killed upload leaves the old version and no partial file"

# a server killed mid-upload: the temp file is swept at the next start
curl -sS --cacert "$CA" --limit-rate 5M -T big.bin "$U/v.txt" >/dev/null 2>&1 &
cpid=$!
sleep 1
kill -9 "$PID_b"; wait "$PID_b" 2>/dev/null || true
kill "$cpid" 2>/dev/null; wait "$cpid" 2>/dev/null || true
ls -A "$T/b/files" | grep -q tlsgate-upload || fail "expected a temp file after a server crash"
"$TG_BIN" serve --state-dir "$T/b" --listen "127.0.0.1:$PORT_b" >>"$T/b.log" 2>&1 &
PIDS+=("$!")
wait_port "$PORT_b" 10 || fail "restart"
[ -z "$(ls -A "$T/b/files" | grep tlsgate-upload)" ] || fail "the temp file survived a restart"
[ "$(cat "$T/b/files/v.txt")" = "old version" ] || fail "the previous version was damaged by the crash"
pass "a server crash mid-upload loses nothing stored; leftovers are swept at start"
echo "70-big-transfer: all passed"
