#!/usr/bin/env bash
# The file service meets bad input and bad luck (issue 13): the two
# use-after-free bugs found by hand, then every upload step failing or slow
# (tests/tools/faultshim.c). Each row: what the client sees, and that no
# partial file is ever visible (the old version stays, no temp file left).
# docs/security.md has the same table in words.
. "$(dirname "$0")/harness.sh"
cd "$T"
faults_for srv
TG_BIN=$FAULTY_BIN start_tlsgate srv --mode off --set timeouts.body=1s --set files.max_upload=4MiB
U="http://127.0.0.1:$PORT_srv/files"
ROOT="$T/srv/files"
alive() { kill -0 "$PID_srv" 2>/dev/null || fail "the server died ($1)"; }
no_temp() {
	local left
	left=$(find "$ROOT" -name '.tlsgate-upload-*' | head -3)
	[ -z "$left" ] || fail "$1: temp files left: $left"
}

# ---- 1. malformed multipart: a form field and no file part, one request ----
printf -- '--XX\r\nContent-Disposition: form-data; name="a"\r\n\r\nv\r\n--XX--\r\n' >mp.bad
code=$(curl -sS -o out -w '%{http_code}' -X PUT -H 'Content-Type: multipart/form-data; boundary=XX' \
	--data-binary @mp.bad "$U/m")
[ "$code" = 400 ] || fail "multipart without a file part: $code, want 400"
grep -q "multipart" out || fail "multipart 400 says: $(cat out)"
alive "malformed multipart"
# a file part cut before its delimiter ends
printf -- '--XX\r\nContent-Disposition: form-data; name="f"; filename="x"\r\n\r\nv\r\n--X' >mp.cut
code=$(curl -sS -o out -w '%{http_code}' -X PUT -H 'Content-Type: multipart/form-data; boundary=XX' \
	--data-binary @mp.cut "$U/m2")
[ "$code" = 400 ] || fail "cut multipart: $code"
[ ! -e "$ROOT/m" ] && [ ! -e "$ROOT/m2" ] || fail "a malformed multipart body stored a file"
alive "cut multipart"
pass "malformed multipart bodies: 400, nothing stored, server alive"

# ---- 2. a commit slower than timeouts.body (fsync 3 s, body timer 1 s) ----
head -c 100000 /dev/urandom >big.bin
printf 'old version\n' >old.txt
curl -sSf -T old.txt "$U/slow.bin" >/dev/null
arm "fsync@.tlsgate-upload:*:sleep=3000"
t0=$(date +%s%N)
code=$(curl -sS -o out -w '%{http_code}' -T big.bin "$U/slow.bin")
ms=$(( ($(date +%s%N) - t0) / 1000000 ))
disarm
faults_met "fsync .*tlsgate-upload.* slept" "slow fsync"
[ "$code" = 200 ] || fail "upload with a slow commit: $code ($(cat out)), want 200 after the commit"
[ "$ms" -ge 2900 ] || fail "the answer came after $ms ms, before the commit could end"
cmp -s big.bin "$ROOT/slow.bin" || fail "slow commit: stored bytes differ"
no_temp "slow commit"
alive "slow commit"
pass "a commit slower than timeouts.body: the client waits, gets 200, the file is whole ($ms ms)"

# the client gives up while the commit runs: the commit ends, the file is whole
head -c 200000 /dev/urandom >big2.bin
arm "fsync@.tlsgate-upload:*:sleep=2000"
curl -sS -o /dev/null --max-time 1 -T big2.bin "$U/gone.bin" 2>/dev/null || true
# (the connection does not read while the commit runs: it answers a closed
# socket afterwards, which the log shows as the commit's status)
wait_log "$T/srv.log" '"PUT /files/gone.bin" 201' 5 "a commit outlives its client"
disarm
cmp -s big2.bin "$ROOT/gone.bin" || fail "client gone: stored bytes differ"
no_temp "client gone"
alive "client gone"

# ---- 3. every step of an upload failing: status, nothing half-written ----
printf 'the old version\n' >keep.txt
curl -sSf -T keep.txt "$U/keep.txt" >/dev/null
head -c 300000 /dev/urandom >new.bin
# RULE EXPECTED-STATUS WHAT
row() {
	local rule=$1 want=$2 what=$3 code
	: >"$FAULT_DIR/fault.log"
	arm "$rule"
	code=$(curl -sS -o out -w '%{http_code}' -T new.bin "$U/keep.txt" || true)
	disarm
	faults_met "fault: " "$what"
	[ "$code" = "$want" ] || fail "$what: status $code ($(cat out)), want $want"
	cmp -s keep.txt "$ROOT/keep.txt" || fail "$what: the old version was changed"
	no_temp "$what"
	alive "$what"
	pass "$what -> $code $(head -c 80 out), old version kept, no temp file"
}
row "open@.tlsgate-upload:1:EMFILE" 500 "PUT, temp file open fails (EMFILE)"
row "open@.tlsgate-upload:1:ENOSPC" 507 "PUT, temp file open fails (ENOSPC)"
row "write@.tlsgate-upload:1:ENOSPC" 507 "PUT, first write fails (ENOSPC)"
row "write@.tlsgate-upload:3:EIO" 500 "PUT, a later write fails (EIO)"
row "fsync@.tlsgate-upload:1:EIO" 500 "PUT, fsync of the file fails (EIO)"
row "rename@.tlsgate-upload:1:EIO" 500 "PUT, rename fails (EIO)"
row "rename@.tlsgate-upload:1:ENOSPC" 507 "PUT, rename fails (ENOSPC)"

# the folder's fsync after the rename fails: the new version is visible and
# whole, and the client is told it may not survive a crash
arm "fsync@$ROOT:2:EIO"
code=$(curl -sS -o out -w '%{http_code}' -T new.bin "$U/keep.txt" || true)
disarm
faults_met "fsync $ROOT -> " "folder fsync"
[ "$code" = 500 ] && grep -q "in place but its folder could not be synced" out ||
	fail "folder fsync fails: $code $(cat out)"
cmp -s new.bin "$ROOT/keep.txt" || fail "folder fsync fails: the visible file is not the whole new one"
no_temp "folder fsync"
pass "PUT, folder fsync after the rename fails -> 500, new version whole and visible"
curl -sSf -T keep.txt "$U/keep.txt" >/dev/null

# reads and deletes
arm "open@$ROOT/keep.txt:1:EMFILE"
code=$(curl -sS -o out -w '%{http_code}' "$U/keep.txt")
disarm
faults_met "open $ROOT/keep.txt" "GET open"
[ "$code" = 500 ] || fail "GET with open failing: $code"
[ "$(curl -sS "$U/keep.txt")" = "the old version" ] || fail "GET after the fault"
pass "GET, open fails (EMFILE) -> 500; the next GET is served"
arm "open@$ROOT:1:EMFILE"
code=$(curl -sS -o out -w '%{http_code}' -X DELETE "$U/keep.txt")
disarm
faults_met "open $ROOT" "DELETE open"
[ "$code" = 500 ] && [ -f "$ROOT/keep.txt" ] || fail "DELETE with open failing: $code"
pass "DELETE, open of the folder fails -> 500, the file stays"

# accept fails once: the connection waits in the backlog and is served
arm "accept:1:EMFILE"
code=$(curl -sS -o /dev/null -w '%{http_code}' --max-time 5 "$U/keep.txt")
disarm
faults_met "accept - -> Too many open files" "accept"
[ "$code" = 200 ] || fail "GET after accept failed once: $code"
assert_log "$T/srv.log" "out of file descriptors" "accept EMFILE logged in words"

# ---- the answer to a finished commit cannot be allocated: the connection
# is closed, not left waiting with no poll and no timer (not under a
# sanitizer: its allocator is its own). A fresh server has no spare buffer.
if [ "${TG_SANITIZE:-OFF}" != ON ] && [ "${TG_TSAN:-OFF}" != ON ]; then
	saved_dir=$FAULT_DIR
	faults_for fresh
	TG_BIN=$FAULTY_BIN start_tlsgate fresh --mode off
	arm "fsync@.tlsgate-upload:*:sleep=1000"
	t0=$(date +%s%N)
	# (no Expect: 100-continue, whose answer would allocate the buffer early)
	curl -sS -o /dev/null --max-time 8 -H "Expect:" -T big.bin "http://127.0.0.1:$PORT_fresh/files/f.bin" 2>/dev/null &
	cpid=$!
	sleep 0.5
	arm "fsync@.tlsgate-upload:*:sleep=1000;malloc@65536:1+:ENOMEM"
	wait "$cpid" 2>/dev/null || true
	ms=$(( ($(date +%s%N) - t0) / 1000000 ))
	disarm
	faults_met "fault: malloc 65536" "the answer's buffer"
	[ "$ms" -lt 5000 ] || fail "the connection whose answer could not be allocated stayed open ($ms ms)"
	cmp -s big.bin "$T/fresh/files/f.bin" || fail "the commit did not finish whole"
	[ "$(curl -sS -o /dev/null -w '%{http_code}' "http://127.0.0.1:$PORT_fresh/files/f.bin")" = 200 ] ||
		fail "not serving after the failed allocation"
	pass "the answer to a commit cannot be allocated: closed after $ms ms, file whole, serving"
	stop_pid "$PID_fresh"
	FAULT_DIR=$saved_dir
fi

# ---- 4. stop while a commit runs: a second signal does not free it ----
arm "fsync@.tlsgate-upload:*:sleep=2000"
curl -sS -o out -T big2.bin "$U/stop.bin" 2>/dev/null &
cpid=$!
sleep 0.7
kill -TERM "$PID_srv"; sleep 0.2; kill -TERM "$PID_srv"
wait "$cpid" 2>/dev/null || true
rc=0; wait "$PID_srv" 2>/dev/null || rc=$?
disarm
[ "$rc" = 0 ] || fail "server exit code $rc after two stop signals during a commit"
cmp -s big2.bin "$ROOT/stop.bin" || fail "stop during a commit: the stored file is not whole"
no_temp "stop during a commit"
grep -q "stored stop.bin (200000 bytes); its client had gone" "$T/srv.log" ||
	fail "the detached commit did not report its end"
pass "two stop signals during a commit: exit 0 after the commit, file whole"
