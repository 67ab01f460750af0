#!/usr/bin/env bash
# The server's own state meets bad luck (issue 13; tests/tools/faultshim.c):
# a pin that cannot be recorded, a reload whose files cannot be read, and
# (builds without ASan, whose allocator the shim cannot reach) allocations
# failing one by one across a whole request. Each time: a line in words,
# the server keeps serving, no partial file is visible.
. "$(dirname "$0")/harness.sh"
cd "$T"
"$TG_BIN" ca init --dir ca >/dev/null
"$TG_BIN" cert issue --server --san dns:localhost,ip:127.0.0.1 --ca ca --out srv >/dev/null
for n in dev1 dev2 dev3; do "$TG_BIN" cert issue --client --name $n --ca ca --out $n >/dev/null; done

faults_for m
cat >m.yaml <<EOF
tls:
  mode: mutual
  cert: $T/srv.crt
  key: $T/srv.key
  clients:
    ca: $T/ca/ca.crt
    trust: tofu
EOF
TG_BIN=$FAULTY_BIN start_tlsgate m --config m.yaml
KC="$T/m/known-clients"
get() { curl -sS -o /dev/null -w '%{http_code}' --cacert ca/ca.crt --cert "$1.crt" --key "$1.key" \
	"https://localhost:$PORT_m/files/"; }
alive() { kill -0 "$PID_m" 2>/dev/null || fail "the server died ($1)"; }
[ "$(get dev1)" = 200 ] || fail "first client"
wait_log "$T/m.log" "recorded dev1" 5 "dev1 recorded"
cp "$KC" kc.before

# ---- the known file cannot be written: write, fsync, open ----
row() {   # RULE WHAT
	: >"$FAULT_DIR/fault.log"
	m=$(log_mark "$T/m.log" "cannot record the key of dev2")
	arm "$1"
	[ "$(get dev2)" = 200 ] || fail "$2: the first contact itself was refused"
	wait_new_log "$T/m.log" "cannot record the key of dev2 in $KC: cannot write $KC: " "$m" 5 "$2: in words" >/dev/null
	disarm
	faults_met "fault: " "$2"
	cmp -s kc.before "$KC" || fail "$2: the known file changed"
	! ls "$T/m" | grep -q "known-clients.tmp" || fail "$2: a temp file was left"
	alive "$2"
	pass "$2 -> logged, known-clients as it was, no temp file"
}
# a first contact appends one line to the file itself: a failed write or
# fsync is cut off again, so the file is as it was
row "write@m/known-clients:1:ENOSPC" "pin record, the append fails (ENOSPC)"
row "fsync@m/known-clients:1:EIO" "pin record, fsync fails (EIO)"
row "open@m/known-clients:1:EMFILE" "pin record, the open fails (EMFILE)"
# and once the disk is back, the same client is recorded
[ "$(get dev2)" = 200 ] || fail "dev2 after the faults"
wait_log "$T/m.log" "recorded dev2" 5 "dev2 recorded once the disk is back"
grep -q "^dev1 " "$KC" && grep -q "^dev2 " "$KC" || fail "known-clients after recovery: $(cat "$KC")"
[ "$(get dev1)" = 200 ] || fail "dev1 after the faults"

# ---- a reload whose configuration or certificate cannot be read ----
m=$(log_mark "$T/m.log" "new configuration refused, the old one keeps serving: .*m.yaml")
arm "open@m.yaml:1:EMFILE"
kill -HUP "$PID_m"
wait_new_log "$T/m.log" "SIGHUP: new configuration refused, the old one keeps serving: .*m.yaml.*(Too many open files|open files)" \
	"$m" 5 "reload with the configuration unreadable: refused in words"
disarm
[ "$(get dev1)" = 200 ] || fail "serving after a refused reload"
m=$(log_mark "$T/m.log" "new configuration refused, the old one keeps serving: .*srv.key")
arm "open@srv.key:1:EIO"
kill -HUP "$PID_m"
wait_new_log "$T/m.log" "SIGHUP: new configuration refused, the old one keeps serving: .*srv.key" "$m" 5 \
	"reload with the key unreadable: refused in words"
disarm
faults_met "open .*srv.key" "key open"
[ "$(get dev1)" = 200 ] || fail "serving after a refused reload"
m=$(log_mark "$T/m.log" "configuration and certificates reloaded")
kill -HUP "$PID_m"
wait_new_log "$T/m.log" "configuration and certificates reloaded" "$m" 5 "the next reload works" >/dev/null
pass "reloads with unreadable files refused, the old configuration serving"

# ---- allocations failing one by one (not under ASan: its allocator is
# its own). Each of the first 80 allocations of a request fails in turn;
# the request may fail, the server must not, and the next one is served.
if [ "${TG_SANITIZE:-OFF}" != ON ] && [ "${TG_TSAN:-OFF}" != ON ]; then
	stop_pid "$PID_m"
	faults_for p
	TG_BIN=$FAULTY_BIN start_tlsgate p --mode off
	U="http://127.0.0.1:$PORT_p/files"
	printf 'payload\n' >p.txt
	failed=0
	for n in $(seq 1 80); do
		arm "malloc:$n:ENOMEM"
		code=$(curl -sS -o /dev/null -w '%{http_code}' --max-time 5 -T p.txt "$U/p$n.txt" 2>/dev/null || true)
		disarm
		kill -0 "$PID_p" 2>/dev/null || fail "allocation $n of a request failing killed the server"
		[ "$code" = 201 ] || failed=$((failed + 1))
		if [ -e "$T/p/files/p$n.txt" ]; then cmp -s p.txt "$T/p/files/p$n.txt" ||
			fail "allocation $n failing left a partial file"; fi
		[ "$(curl -sS -o /dev/null -w '%{http_code}' --max-time 5 "$U/")" = 200 ] ||
			fail "not serving after allocation $n failed"
	done
	faults_met "fault: malloc" "malloc"
	! find "$T/p/files" -name '.tlsgate-upload-*' | grep -q . || fail "a temp upload was left"
	pass "80 allocations failing one at a time: $failed requests refused, server serving, no partial file"
fi
