#!/usr/bin/env bash
# systemd: socket activation with systemd-socket-activate (a socket named
# https wins over the configured address; one bound to a tunnel's address
# goes to that tunnel; a stray one is warned about and closed; workers
# share the socket; port 443 served by an unprivileged user); sd_notify as
# a notify socket sees it: READY=1, RELOADING=1 with MONOTONIC_USEC then
# READY=1, STOPPING=1, WATCHDOG=1 at half of WATCHDOG_USEC; the shipped
# units pass systemd-analyze verify.
. "$(dirname "$0")/harness.sh"
TOOLS=$(cd "$(dirname "$0")/../tools" && pwd)
CONTRIB=$(cd "$(dirname "$0")/../../contrib" && pwd)
command -v systemd-socket-activate >/dev/null || fail "systemd-socket-activate is missing"
cd "$T"

SINK=$T/notify.sock
/usr/bin/python3 "$TOOLS/notify_sink.py" "$SINK" >notify.log 2>&1 &
PIDS+=("$!")
wait_log "$T/notify.log" "listening" 5 "a notify socket like systemd's"

SP=$(free_port); TP=$(free_port); XP=$(free_port); EP=$(free_port); CFGP=$(free_port)
"${TG_TCPECHO:?}" serve "$EP" >echo.log 2>&1 &
PIDS+=("$!")
cat >a.yaml <<YAML
admin: { listen: off }
tunnels:
  - listen: 127.0.0.1:$TP
    connect: 127.0.0.1:$EP
YAML
NOTIFY_SOCKET=$SINK WATCHDOG_USEC=400000 systemd-socket-activate -E NOTIFY_SOCKET -E WATCHDOG_USEC \
	-l "127.0.0.1:$SP" -l "127.0.0.1:$TP" -l "127.0.0.1:$XP" --fdname=https:unknown:stray \
	"$TG_BIN" serve --state-dir "$T/A" --listen "127.0.0.1:$CFGP" --config a.yaml >A.log 2>&1 &
PID_A=$!
PIDS+=("$PID_A")
sleep 0.3
(exec 3<>"/dev/tcp/127.0.0.1/$SP") || fail "systemd-socket-activate does not listen"
wait_log "$T/A.log" "serving https://127.0.0.1:$SP/files/ \(HTTPS\) on 127.0.0.1:$SP \(a socket from systemd\)" 10 \
	"the socket named https serves, over listen's configured port"
code=$(curl -sS --cacert "$T/A/ca/ca.crt" -o /dev/null -w '%{http_code}' "https://localhost:$SP/files/")
[ "$code" = 200 ] || fail "HTTPS on the inherited socket: $code"
if (exec 3<>"/dev/tcp/127.0.0.1/$CFGP") 2>/dev/null; then fail "the configured port was bound too"; fi
pass "HTTPS on the inherited socket; the configured address is not bound"
grep -q "tunnel 0: TLS 127.0.0.1:$TP -> plain" "$T/A.log" || fail "tunnel line"
echo | openssl s_client -connect "127.0.0.1:$TP" >sc.out 2>&1 || true
grep -q "^CONNECTED" sc.out && grep -q "Server certificate" sc.out || fail "the tunnel's inherited socket: $(head -3 sc.out)"
pass "an unnamed socket bound to a tunnel's address goes to that tunnel"
grep -q "warning: systemd passed the socket stray (127.0.0.1:$XP) and no listener is configured for it; closed" "$T/A.log" ||
	fail "no warning for the stray socket"
pass "a socket no listener takes is named in a warning and closed"

wait_log "$T/notify.log" "^READY=1 \| STATUS=serving 127.0.0.1:$SP$" 5 "READY=1 once serving"
n0=$(grep -c '^WATCHDOG=1$' notify.log || true)
sleep 1
n1=$(grep -c '^WATCHDOG=1$' notify.log || true)
[ $((n1 - n0)) -ge 3 ] && [ $((n1 - n0)) -le 8 ] || fail "WATCHDOG=1 at 200 ms: $((n1 - n0)) in a second"
pass "WATCHDOG=1 every half WATCHDOG_USEC ($((n1 - n0)) in a second at 400 ms)"
kill -HUP "$PID_A"
wait_log "$T/notify.log" "^RELOADING=1 \| MONOTONIC_USEC=[0-9]+$" 5 "RELOADING=1 with MONOTONIC_USEC on SIGHUP"
wait_log "$T/notify.log" "^READY=1 \| STATUS=serving 127.0.0.1:$SP \(reloaded\)$" 5 "READY=1 when the reload is done"
if grep -q "listen changed" "$T/A.log"; then fail "a reload complained that listen differs from the inherited socket"; fi
mono=$(grep -o 'MONOTONIC_USEC=[0-9]*' notify.log | head -1 | cut -d= -f2)
up=$(cut -d' ' -f1 /proc/uptime)
now=$(( ${up%.*} * 1000000 + 1000000 ))
[ $(( now - mono )) -ge 0 ] && [ $(( now - mono )) -lt 60000000 ] || fail "MONOTONIC_USEC $mono is not CLOCK_MONOTONIC (now ~$now)"
kill -TERM "$PID_A"
wait_log "$T/notify.log" "^STOPPING=1$" 5 "STOPPING=1 on SIGTERM"
wait "$PID_A" 2>/dev/null || true

# workers share one inherited socket
WP=$(free_port)
systemd-socket-activate -l "127.0.0.1:$WP" "$TG_BIN" serve --state-dir "$T/W" --listen "127.0.0.1:$WP" \
	--set admin.listen=off --set workers=2 >W.log 2>&1 &
PIDS+=("$!")
sleep 0.3
(exec 3<>"/dev/tcp/127.0.0.1/$WP") || true
wait_log "$T/W.log" "workers: 2 processes serve 127.0.0.1:$WP \(sharing the socket from systemd\)" 10 \
	"two workers on one socket from systemd (by address)"
for i in 1 2 3 4 5 6; do
	code=$(curl -sS --cacert "$T/W/ca/ca.crt" -o /dev/null -w '%{http_code}' "https://localhost:$WP/files/")
	[ "$code" = 200 ] || fail "request $i to the workers: $code"
done
pass "requests answered by workers sharing systemd's socket"

# port 443 without root: systemd binds it, an unprivileged user serves it
if [ "$(id -u)" = 0 ] && ! (exec 3<>/dev/tcp/127.0.0.1/443) 2>/dev/null && command -v setpriv >/dev/null; then
	mkdir -p "$T/N" && chown 65534:65534 "$T/N" && chmod 711 "$T"
	systemd-socket-activate -E HOME="$T/N" -l 127.0.0.1:443 --fdname=https \
		setpriv --reuid=65534 --regid=65534 --clear-groups \
		"$TG_BIN" serve --state-dir "$T/N" --set admin.listen=off >N.log 2>&1 &
	PIDS+=("$!")
	sleep 0.3
	(exec 3<>/dev/tcp/127.0.0.1/443) || true
	wait_log "$T/N.log" "on 127.0.0.1:443 \(a socket from systemd\)" 10 "port 443 inherited"
	code=$(curl -sS --cacert "$T/N/ca/ca.crt" -o /dev/null -w '%{http_code}' "https://localhost/files/")
	[ "$code" = 200 ] || fail "port 443 as nobody: $code"
	[ "$(ps -o user= -p "$(pgrep -f "state-dir $T/N" | head -1)")" = nobody ] || fail "not running as nobody"
	pass "port 443 served by user nobody, with neither root nor setcap"
else
	echo "skip: port 443 as nobody (needs root and a free port 443)"
fi

# the shipped units
if command -v systemd-analyze >/dev/null; then
	sed "s|@CMAKE_INSTALL_FULL_BINDIR@|$(dirname "$TG_BIN")|" "$CONTRIB/tlsgate.service" >tlsgate.service
	cp "$CONTRIB/tlsgate.socket" .
	systemd-analyze verify ./tlsgate.socket ./tlsgate.service >verify.log 2>&1 || true
	if grep -v "Command 'man " verify.log | grep -q .; then fail "systemd-analyze verify: $(cat verify.log)"; fi
	grep -q "^Type=notify$" tlsgate.service && grep -q "^WatchdogSec=" tlsgate.service || fail "unit type"
	pass "contrib/tlsgate.service (Type=notify, WatchdogSec) and tlsgate.socket pass systemd-analyze verify"
fi
