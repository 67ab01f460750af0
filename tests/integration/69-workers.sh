#!/usr/bin/env bash
# workers: N processes, one SO_REUSEPORT socket each. Every connection is
# answered, counters are summed over the workers, a ticket from one worker
# resumes on the others, a worker that dies is started again, SIGHUP reaches
# every worker, SIGTERM stops them all; bad values are refused in words.
. "$(dirname "$0")/harness.sh"
cd "$T"
"$TG_BIN" ca init --dir ca >/dev/null
"$TG_BIN" cert issue --server --san dns:localhost --ca ca --out srv >/dev/null
mkdir -p www; printf 'hello\n' >www/ok
AP=$(free_port)
printf 'files:\n  max_upload: 10MiB\n' >w.yaml
start_tlsgate w --config w.yaml --cert srv.crt --key srv.key --set workers=2 --set "admin.listen=127.0.0.1:$AP" \
	--set files.root="$T/www" --set files.prefix=/ --set log.level=info
metric() { curl -sS "http://127.0.0.1:$AP/metrics" | awk -v k="$1" 'index($0, k) == 1 { print $NF }'; }
workers() { pgrep -P "$PID_w" | sort; }
get() {   # PORT [s_client args]: one HTTP/1.0 request for /ok
	local port=$1; shift
	printf 'GET /ok HTTP/1.0\r\n\r\n' | openssl s_client -connect "127.0.0.1:$port" -ign_eof "$@" 2>/dev/null
}
resumed() {   # PORT SESSION N: how many of N connections resume SESSION
	local n=0 i
	for i in $(seq "$3"); do get "$1" -sess_in "$2" | grep -q '^Reused' && n=$((n + 1)); done
	echo "$n"
}

[ "$(workers | wc -l)" = 2 ] || fail "want 2 worker processes under $PID_w, have: $(workers | tr '\n' ' ')"
socks=$(ss -ltnH "sport = :$PORT_w" | wc -l)
[ "$socks" = 2 ] || fail "want 2 listening sockets on port $PORT_w (one per worker), ss shows $socks"
assert_log "$T/w.log" "workers: 2 processes serve" "the supervisor says how many workers serve"
pass "workers=2: two processes, each with its own SO_REUSEPORT socket on port $PORT_w"

for i in $(seq 60); do
	[ "$(curl -sS --cacert ca/ca.crt "https://localhost:$PORT_w/ok")" = hello ] || fail "request $i"
done
sleep 1.5   # counters are published each second
[ "$(metric tlsgate_workers)" = 2 ] || fail "tlsgate_workers"
ok=$(metric 'tlsgate_requests_total{code="2xx"}')
[ "${ok:-0}" -ge 60 ] || fail "2xx summed over the workers: $ok, want >= 60"
pass "60 connections answered; /metrics sums both workers ($ok 2xx)"

# one ticket, many resumptions: the kernel spreads them over both workers
rm -f t.pem
get "$PORT_w" -sess_out t.pem | grep -q '^hello' || fail "first s_client request"
reused=$(resumed "$PORT_w" t.pem 16)
[ "$reused" = 16 ] || fail "only $reused of 16 resumptions succeeded: workers do not share ticket keys"
pass "16 of 16 resumptions with one ticket (keys shared by the workers)"

# mutual mode with several workers: tickets (not a per-process cache), and a
# ticket's certificate is judged again by whichever worker it reaches
"$TG_BIN" cert issue --client --name dev1 --ca ca --out c1 >/dev/null
start_tlsgate m --mode mutual --cert srv.crt --key srv.key --set tls.clients.ca=ca/ca.crt \
	--set tls.clients.trust=whitelist --set workers=2 --set admin.listen=off \
	--set files.root="$T/www" --set files.prefix=/
"$TG_BIN" trust add --store known-clients --cert c1.crt --file "$T/m/known-clients" 2>/dev/null || fail "trust add"
rm -f m.pem
get "$PORT_m" -cert c1.crt -key c1.key -sess_out m.pem | grep -q '^hello' || fail "mutual first request"
reused=$(resumed "$PORT_m" m.pem 8)
[ "$reused" = 8 ] || fail "mutual, 2 workers: $reused of 8 resumptions"
"$TG_BIN" trust remove --file "$T/m/known-clients" dev1 2>/dev/null || fail "trust remove"
out=$(get "$PORT_m" -sess_in m.pem || true)
echo "$out" | grep -qE '^(Reused|hello)' && fail "a removed client resumed on its ticket: $out"
pass "mutual, 2 workers: 8 of 8 resumptions on one ticket; after trust remove the ticket is refused"
stop_pid "$PID_m"

# every counter is summed across workers (metrics.h lists them once): the
# verified-chain cache's lookups too, which live in each process
MA=$(free_port)
start_tlsgate mc --mode mutual --cert srv.crt --key srv.key --set tls.clients.ca=ca/ca.crt \
	--set tls.clients.trust=ca --set workers=2 --set "admin.listen=127.0.0.1:$MA" \
	--set files.root="$T/www" --set files.prefix=/
for i in $(seq 20); do
	curl -sS -o /dev/null --cacert ca/ca.crt --cert c1.crt --key c1.key "https://localhost:$PORT_mc/ok" ||
		fail "mutual request $i"
done
for _ in $(seq 50); do   # each worker publishes its counters once a second
	mm=$(curl -sS "http://127.0.0.1:$MA/metrics")
	hits=$(echo "$mm" | awk -F' ' '/^tlsgate_chain_cache_lookups_total\{result="hit"\}/ {print $2}')
	miss=$(echo "$mm" | awk -F' ' '/^tlsgate_chain_cache_lookups_total\{result="miss"\}/ {print $2}')
	hs=$(echo "$mm" | awk -F' ' '/^tlsgate_handshakes_total\{result="ok"\}/ {print $2}')
	[ $((hits + miss)) -ge 20 ] && break
	sleep 0.1
done
! echo "$mm" | grep '^# TYPE' | sort | uniq -d | grep -q . || fail "a metric family typed twice: $(echo "$mm" | grep '^# TYPE' | sort | uniq -d)"
[ $((hits + miss)) = 20 ] || fail "chain cache lookups summed over 2 workers: $hits hits + $miss misses, want 20"
[ "$hs" -ge 20 ] || fail "handshakes summed over 2 workers: $hs"
[ "$miss" -ge 1 ] && [ "$miss" -le 2 ] || fail "one miss per worker at most, got $miss"
pass "/metrics sums every counter over 2 workers: 20 chain-cache lookups ($hits hits, $miss misses)"
# a worker replaced: its successor's counts go on from the dead one's
pids=$(pgrep -P "$PID_mc" || true)
victim=$(echo "$pids" | tail -1)
[ -n "$victim" ] || fail "no worker process of $PID_mc"
kill -9 "$victim"
for _ in $(seq 50); do
	[ "$(curl -sS -o /dev/null -w '%{http_code}' --cacert ca/ca.crt --cert c1.crt --key c1.key \
		"https://localhost:$PORT_mc/ok" 2>/dev/null)" = 200 ] && break
	sleep 0.1
done
sleep 2.5   # the replacement published at least once
mm=$(curl -sS "http://127.0.0.1:$MA/metrics")
h2=$(echo "$mm" | awk -F' ' '/^tlsgate_chain_cache_lookups_total\{result="hit"\}/ {print $2}')
m2=$(echo "$mm" | awk -F' ' '/^tlsgate_chain_cache_lookups_total\{result="miss"\}/ {print $2}')
[ $((h2 + m2)) -ge 20 ] || fail "chain cache lookups went back from 20 to $((h2 + m2)) when a worker was replaced"
pass "a worker killed and replaced: the summed chain-cache counter did not go back ($((h2 + m2)) >= 20)"
stop_pid "$PID_mc"

# a reload, then a worker dies: its replacement must serve the reloaded
# settings, not the ones the supervisor read at start
sed -i 's/10MiB/1KiB/' w.yaml
n0=$(grep -c "reloaded" "$T/w.log" || true)
kill -HUP "$PID_w"
for i in $(seq 50); do [ $(( $(grep -c "reloaded" "$T/w.log") - n0 )) -ge 2 ] && break; sleep 0.1; done
sleep 1.5
before=$(metric 'tlsgate_requests_total{code="2xx"}')
victim=$(workers | head -1)
kill -9 "$victim"
wait_log "$T/w.log" "worker [0-9] \(pid $victim\) died of signal 9; starting it again" 5 \
	"the supervisor reports the dead worker" || fail "no restart message"
for i in $(seq 50); do [ "$(workers | wc -l)" = 2 ] && ! workers | grep -qx "$victim" && break; sleep 0.1; done
[ "$(workers | wc -l)" = 2 ] || fail "the dead worker was not replaced"
for i in $(seq 10); do
	[ "$(curl -sS --cacert ca/ca.crt "https://localhost:$PORT_w/ok")" = hello ] || fail "request after restart"
done
head -c 5000 /dev/zero >5k.bin
for i in $(seq 12); do
	code=$(curl -sS -o /dev/null -w '%{http_code}' --cacert ca/ca.crt -T 5k.bin "https://localhost:$PORT_w/5k.bin")
	[ "$code" = 413 ] || fail "upload $i: $code; the replacement worker does not have the reloaded max_upload"
done
sleep 1.5
after=$(metric 'tlsgate_requests_total{code="2xx"}')
[ "$after" -ge "$before" ] || fail "2xx went back from $before to $after: the replacement lost the counters"
pass "a killed worker is started again; service continues with the reloaded settings (12 of 12 uploads over 1 KiB refused); counters carry on"

sed -i 's/1KiB/10MiB/' w.yaml
n0=$(grep -c "reloaded" "$T/w.log" || true)
kill -HUP "$PID_w"
for i in $(seq 50); do [ $(( $(grep -c "reloaded" "$T/w.log") - n0 )) -ge 2 ] && break; sleep 0.1; done
[ $(( $(grep -c "reloaded" "$T/w.log") - n0 )) = 2 ] || fail "SIGHUP did not reach both workers"
pass "SIGHUP to the supervisor reloads both workers"

# systemd (KillMode=control-group) and a terminal's Ctrl-C signal every
# process of the group, and the supervisor forwards too: a worker must take
# that as one stop and let the upload in flight finish
head -c 3000000 /dev/urandom >up.bin
curl -sS --cacert ca/ca.crt --limit-rate 1M -T up.bin -o /dev/null -w '%{http_code}' \
	"https://localhost:$PORT_w/up.bin" >up.code 2>up.err &
cpid=$!
sleep 0.8
kids=$(workers)
kill -TERM "$PID_w" $kids
for i in $(seq 100); do kill -0 "$PID_w" 2>/dev/null || break; sleep 0.1; done
kill -0 "$PID_w" 2>/dev/null && fail "the supervisor did not stop on SIGTERM"
rc=0; wait "$PID_w" || rc=$?
[ "$rc" = 0 ] || fail "supervisor exit status $rc"
for k in $kids; do kill -0 "$k" 2>/dev/null && fail "worker $k still runs"; done
wait "$cpid" || fail "the upload in flight was cut by the stop: $(cat up.err)"
[ "$(cat up.code)" = 201 ] && cmp -s up.bin www/up.bin || fail "upload during the stop: $(cat up.code)"
grep -q "second stop signal" "$T/w.log" && fail "a worker took the doubled SIGTERM as a second signal"
pass "SIGTERM to the whole group (as systemd sends it): the upload in flight finishes (201, same bytes)"
pass "SIGTERM stops the supervisor and every worker (exit 0)"

expect_fail "workers=0 refused" "workers \(--set\): '0' must be a number from 1 to 64, or auto" \
	"$TG_BIN" serve --state-dir "$T/x" --set workers=0
