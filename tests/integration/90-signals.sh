#!/usr/bin/env bash
# Reload and stop: SIGHUP swaps certificates and settings without dropping
# open connections and refuses a broken set; SIGTERM lets requests in flight
# finish, and past timeouts.shutdown discards unfinished uploads whole.
. "$(dirname "$0")/harness.sh"
cd "$T"
"$TG_BIN" ca init --dir ca >/dev/null
"$TG_BIN" cert issue --server --san dns:localhost --ca ca --out a >/dev/null
"$TG_BIN" cert issue --server --san dns:localhost --ca ca --out b >/dev/null
cp a.crt cur.crt; cp a.key cur.key
printf 'tls:\n  cert: cur.crt\n  key: cur.key\nfiles:\n  max_upload: 10MiB\n' >g.yaml
start_tlsgate r --config g.yaml
U="https://localhost:$PORT_r"
pin() { "$TG_BIN" cert show "localhost:$PORT_r" --ca-cert ca/ca.crt | grep -m1 pin: | awk '{print $2}'; }
pin_a=$(pin)
pin_b=$("$TG_BIN" cert show b.crt | grep -m1 pin: | awk '{print $2}')
echo hi >hi.txt
curl -sS --cacert ca/ca.crt -T hi.txt "$U/files/hi.txt" >/dev/null

# a keep-alive connection spanning the reload
curl -sS --cacert ca/ca.crt -v --rate 2/s "$U/files/hi.txt" "$U/files/hi.txt" "$U/files/hi.txt" \
	-o /dev/null -o /dev/null -o /dev/null 2>ka.err &
kpid=$!
sleep 0.3
cp b.crt cur.crt; cp b.key cur.key
kill -HUP "$PID_r"
wait "$kpid" || fail "the keep-alive client failed across the reload"
[ "$(grep -c 'Re-using existing connection' ka.err)" -ge 2 ] || fail "the connection was not kept across SIGHUP"
assert_log "$T/r.log" "SIGHUP: configuration and certificates reloaded" "reload logged"
[ "$(pin)" = "$pin_b" ] || fail "new connections do not get the new certificate"
pass "SIGHUP swaps the certificate; an open keep-alive connection keeps working"

echo "garbage" >cur.key
kill -HUP "$PID_r"
assert_log "$T/r.log" "SIGHUP: new configuration refused, the old one keeps serving: tls.key .*cur.key" "a broken key is refused"
[ "$(pin)" = "$pin_b" ] || fail "a refused reload changed the certificate"
curl -sS --cacert ca/ca.crt "$U/files/hi.txt" >/dev/null || fail "serving after a refused reload"
pass "a broken reload is refused; the old certificate keeps serving"

cp b.key cur.key

# certificate files edited in place, no signal: the watcher swaps them in
# (after both settle) and refuses a broken pair, keeping the old one
sleep 3.5   # the watcher has reported the edits above
ok_pat="tls.cert changed on disk: certificate for localhost in service"
bad_pat="tls.cert changed on disk but the new files were refused, the old certificate keeps serving: .*does not match"
m=$(log_mark "$T/r.log" "$ok_pat")
cp a.crt cur.crt; cp a.key cur.key
wait_new_log "$T/r.log" "$ok_pat" "$m" 10 "an edited certificate file is noticed without SIGHUP"
[ "$(pin)" = "$pin_a" ] || fail "the edited certificate is not served"
sleep 3.5
m=$(log_mark "$T/r.log" "$bad_pat")
cp b.crt cur.crt   # a new certificate with the old key: a broken pair
wait_new_log "$T/r.log" "$bad_pat" "$m" 10 "a broken edited pair is refused"
[ "$(pin)" = "$pin_a" ] || fail "a refused pair changed the certificate"
cp b.key cur.key
kill -HUP "$PID_r"
sleep 0.3
sed -i 's/10MiB/1KiB/' g.yaml
kill -HUP "$PID_r"
sleep 0.3
head -c 5000 /dev/zero >5k.bin
code=$(curl -sS -o /dev/null -w '%{http_code}' --cacert ca/ca.crt -T 5k.bin "$U/files/5k.bin")
[ "$code" = 413 ] || fail "files.max_upload from the reloaded file not applied: $code"
pass "SIGHUP applies changed settings from the file"

# many reloads in a row while the certificate files are watched: the watch
# is re-armed every time and must never trip over a check in flight
for i in $(seq 40); do kill -HUP "$PID_r"; sleep 0.11; done
sleep 2.5
kill -0 "$PID_r" 2>/dev/null || fail "the server died during repeated reloads: $(tail -3 "$T/r.log")"
curl -sS --cacert ca/ca.crt "$U/files/hi.txt" >/dev/null || fail "serving after 40 reloads"
pass "40 reloads in 4.4 s while the files are watched: still serving"

# graceful stop: the upload in flight finishes, new connections are refused
head -c 3000000 /dev/urandom >3m.bin
start_tlsgate g
curl -sS -k --limit-rate 2M -T 3m.bin "https://localhost:$PORT_g/files/3m.bin" >/dev/null 2>up.err &
upid=$!
sleep 0.4
kill -TERM "$PID_g"
sleep 0.2
curl -sS -k "https://localhost:$PORT_g/files/" >/dev/null 2>&1 && fail "a new connection was accepted while stopping"
wait "$upid" || fail "the upload in flight was cut by SIGTERM: $(cat up.err)"
cmp -s 3m.bin "$T/g/files/3m.bin" || fail "the upload in flight was not stored whole"
for i in $(seq 50); do kill -0 "$PID_g" 2>/dev/null || break; sleep 0.1; done
kill -0 "$PID_g" 2>/dev/null && fail "the server did not exit after draining"
pass "SIGTERM: no new connections, the upload in flight completes, then the server exits"

# past timeouts.shutdown: the unfinished upload is discarded whole
start_tlsgate d --set timeouts.shutdown=1s
curl -sS -k --limit-rate 100K -T 3m.bin "https://localhost:$PORT_d/files/slow.bin" >/dev/null 2>&1 &
upid=$!
sleep 0.4
t0=$(date +%s%N)
kill -TERM "$PID_d"
for i in $(seq 60); do kill -0 "$PID_d" 2>/dev/null || break; sleep 0.1; done
ms=$(( ($(date +%s%N) - t0) / 1000000 ))
kill -0 "$PID_d" 2>/dev/null && fail "the server did not stop after timeouts.shutdown"
[ "$ms" -lt 4000 ] || fail "stop took $ms ms with timeouts.shutdown=1s"
wait "$upid" 2>/dev/null && fail "the slow upload reported success"
[ ! -e "$T/d/files/slow.bin" ] || fail "a partial upload became visible"
ls -A "$T/d/files" | grep -q tlsgate-upload && fail "a temp file was left"
assert_log "$T/d.log" "still busy after timeouts.shutdown" "the forced close is logged"
pass "past timeouts.shutdown the upload is discarded whole ($ms ms)"
echo "90-signals: all passed"
