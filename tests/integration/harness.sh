# Shared helpers for the integration scenarios (hitch style): a temp dir,
# an EXIT trap that stops every process we started, fail() that shows the
# logs, and helpers to start tlsgate and nginx on loopback.
set -euo pipefail

TG_BIN=${TG_BIN:?TG_BIN must name the tlsgate binary}
T=$(mktemp -d /tmp/tlsgate-test.XXXXXX)
PIDS=()
export HOME=$T/home            # no user config file leaks in
mkdir -p "$HOME"
unset TLSGATE_CONFIG
for v in $(env | grep -o '^TLSGATE_[A-Z_]*' || true); do unset "$v"; done
# Sanitizer builds: leaks are failures; keep reports readable.
export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=0}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}
export TSAN_OPTIONS=${TSAN_OPTIONS:-second_deadlock_stack=1:history_size=4}

cleanup() {
	local p rc=$?
	for p in "${PIDS[@]:-}"; do
		[ -n "$p" ] && kill "$p" 2>/dev/null || true
	done
	for p in "${PIDS[@]:-}"; do
		[ -n "$p" ] && wait "$p" 2>/dev/null || true
	done
	# a sanitizer report in any server log fails the scenario
	if grep -lE "ERROR: (Address|Leak)Sanitizer|runtime error:|WARNING: ThreadSanitizer" "$T"/*.log >/dev/null 2>&1; then
		echo "FAIL: sanitizer report in a log:" >&2
		grep -hE -A30 "ERROR: (Address|Leak)Sanitizer|runtime error:|WARNING: ThreadSanitizer" "$T"/*.log | head -80 >&2
		rc=1
	fi
	if [ "${KEEP:-0}" = 1 ]; then echo "kept $T"; else rm -rf "$T"; fi
	exit "$rc"
}
trap cleanup EXIT

fail() {
	echo "FAIL: $*" >&2
	local f
	for f in "$T"/*.log; do
		[ -f "$f" ] || continue
		echo "---- $f (last 30 lines)" >&2
		tail -n 30 "$f" >&2
	done
	exit 1
}

pass() { echo "ok: $*"; }

# A port that nothing listens on right now.
free_port() {
	local p
	for _ in $(seq 50); do
		p=$((10000 + RANDOM % 22000))   # below the ephemeral range clients use
		if ! (exec 3<>/dev/tcp/127.0.0.1/$p) 2>/dev/null; then echo "$p"; return; fi
	done
	fail "no free port"
}

wait_port() {   # PORT [SECONDS]
	local i
	for i in $(seq $(( ${2:-10} * 20 ))); do
		if (exec 3<>/dev/tcp/127.0.0.1/$1) 2>/dev/null; then return 0; fi
		sleep 0.05
	done
	return 1
}

# start_tlsgate NAME [serve args...]: state in $T/NAME, log in $T/NAME.log,
# sets PORT_<NAME> and PID_<NAME>.
start_tlsgate() {
	local name=$1; shift
	local port pid try
	for try in 1 2 3 4 5; do
		port=$(free_port)
		"$TG_BIN" serve --state-dir "$T/$name" --listen "127.0.0.1:$port" "$@" >"$T/$name.log" 2>&1 &
		pid=$!
		# up when it says it serves (after its listener is open) and listens;
		# a port taken meanwhile means another try
		local i
		for i in $(seq 200); do
			grep -q "serving" "$T/$name.log" 2>/dev/null && break
			kill -0 "$pid" 2>/dev/null || break
			sleep 0.05
		done
		if grep -q "serving" "$T/$name.log" && wait_port "$port" 10 && kill -0 "$pid" 2>/dev/null; then
			PIDS+=("$pid")
			printf -v "PORT_$name" '%s' "$port"
			printf -v "PID_$name" '%s' "$pid"
			return 0
		fi
		kill "$pid" 2>/dev/null || true
		wait "$pid" 2>/dev/null || true
		grep -q "in use" "$T/$name.log" || break
	done
	fail "tlsgate $name did not start"
}

stop_pid() {
	kill "$1" 2>/dev/null || true
	wait "$1" 2>/dev/null || true
}

# expect_fail DESCRIPTION PATTERN CMD...: CMD exits 1 with one stderr line
# matching PATTERN (grep -E).
expect_fail() {
	local what=$1 pat=$2; shift 2
	local out rc=0
	out=$("$@" 2>&1 >/dev/null) || rc=$?
	[ "$rc" = 1 ] || fail "$what: exit code $rc, want 1 (stderr: $out)"
	[ "$(printf '%s\n' "$out" | grep -c .)" = 1 ] || fail "$what: want one line on stderr, got: $out"
	printf '%s\n' "$out" | grep -qE -- "$pat" || fail "$what: stderr does not match /$pat/: $out"
	pass "$what -> $out"
}

assert_log() {   # FILE PATTERN WHAT
	local i
	for i in $(seq 40); do
		grep -qE -- "$2" "$1" && { pass "$3"; return 0; }
		sleep 0.05
	done
	fail "$3: no line matching /$2/ in $1"
}

sha() { sha256sum "$1" | cut -d' ' -f1; }

# An nginx of our own on loopback: start_nginx NAME CONF-BODY (the server
# blocks); sets PID_NGINX_<NAME>.
start_nginx() {
	local name=$1 body=$2
	mkdir -p "$T/nginx-$name"
	cat >"$T/nginx-$name/nginx.conf" <<NGX
daemon off;
$( [ "$(id -u)" = 0 ] && echo "user root;" )
worker_processes 1;
pid $T/nginx-$name/nginx.pid;
error_log $T/nginx-$name.log info;
events { worker_connections 64; }
http {
  access_log $T/nginx-$name.log;
  client_body_temp_path $T/nginx-$name/body;
  proxy_temp_path $T/nginx-$name/proxy;
  fastcgi_temp_path $T/nginx-$name/fcgi;
  uwsgi_temp_path $T/nginx-$name/uwsgi;
  scgi_temp_path $T/nginx-$name/scgi;
  $body
}
NGX
	nginx -p "$T/nginx-$name" -c "$T/nginx-$name/nginx.conf" >"$T/nginx-$name.out.log" 2>&1 &
	PIDS+=("$!")
	printf -v "PID_NGINX_$name" '%s' "$!"
}

# A server certificate for localhost signed by the CA in $1, written to
# $2.crt/$2.key, valid from $3 to $4 (YYYYMMDDHHMMSSZ): openssl ca makes the
# expired and not-yet-valid certificates tlsgate itself will not.
make_expired_cert() { make_dated_cert "$1" "$2" 20200101000000Z 20210101000000Z; }
make_dated_cert() {
	local ca=$1 out=$2 from=$3 to=$4 d=$T/dated-ca-$RANDOM
	mkdir -p "$d"
	: >"$d/index.txt"
	openssl req -new -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout "$out.key" \
		-subj /CN=localhost -out "$d/req.csr" 2>/dev/null
	cat >"$d/ca.cnf" <<CNF
[ca]
default_ca = c
[c]
database = $d/index.txt
new_certs_dir = $d
serial = $d/serial
default_md = sha256
policy = p
x509_extensions = ext
[p]
commonName = supplied
[ext]
basicConstraints = critical,CA:FALSE
keyUsage = critical,digitalSignature
extendedKeyUsage = serverAuth
subjectAltName = DNS:localhost
CNF
	echo 1000 >"$d/serial"
	openssl ca -batch -config "$d/ca.cnf" -cert "$ca/ca.crt" -keyfile "$ca/ca.key" \
		-startdate "$from" -enddate "$to" -in "$d/req.csr" -out "$out.crt" \
		>/dev/null 2>&1 || fail "openssl ca could not make an expired certificate"
}

# openssl s_server on a free port with CERT KEY; sets PORT_S_<NAME>.
start_s_server() {   # NAME CERT KEY
	local port; port=$(free_port)
	openssl s_server -accept "127.0.0.1:$port" -cert "$2" -key "$3" -www -quiet >"$T/s_server-$1.log" 2>&1 &
	PIDS+=("$!")
	printf -v "PORT_S_$1" '%s' "$port"
	printf -v "PID_S_$1" '%s' "$!"
	wait_port "$port" 10 || fail "openssl s_server $1 did not start"
}

# wait_log FILE PATTERN SECONDS WHAT: like assert_log, for slower events.
wait_log() {
	local i
	for i in $(seq $(( $3 * 10 ))); do
		grep -qE -- "$2" "$1" 2>/dev/null && { pass "$4"; return 0; }
		sleep 0.1
	done
	fail "$4: no line matching /$2/ in $1 within $3 s"
}

# start_pebble: Let's Encrypt's test CA on loopback with its DNS and
# challenge test server. The validation ports are chosen first, so tlsgate
# must answer HTTP-01 on ACME_HTTP_PORT and TLS-ALPN-01 on ACME_TLS_PORT.
# Every name resolves to 127.0.0.1. Sets ACME_DIR (directory URL),
# ACME_CA (trust for pebble's own HTTPS), ACME_ROOT (the root it issues
# from), CHALL_MGMT (challtestsrv's management port, for DNS-01 hooks).
# PEBBLE_EAB=true makes pebble require external account binding (key id
# kid-1, the HMAC key in the config below); PEBBLE_VALIDITY=SECONDS sets
# the lifetime of what it issues.
start_pebble() {
	command -v pebble >/dev/null || fail "pebble is not installed (make test installs it)"
	ACME_HTTP_PORT=$(free_port); ACME_TLS_PORT=$(free_port)
	local dns=$(free_port) mgmt=$(free_port) pp=$(free_port) pm=$(free_port)
	CHALL_MGMT=$mgmt
	local validity=""
	[ -n "${PEBBLE_VALIDITY:-}" ] && validity="\"certificateValidityPeriod\":$PEBBLE_VALIDITY,"
	rm -rf "$T/pebble"; mkdir -p "$T/pebble"
	"$TG_BIN" ca init --dir "$T/pebble/ca" >/dev/null
	"$TG_BIN" cert issue --server --san dns:localhost,ip:127.0.0.1 --ca "$T/pebble/ca" \
		--out "$T/pebble/tls" >/dev/null
	cat >"$T/pebble/config.json" <<JSON
{"pebble":{"listenAddress":"127.0.0.1:$pp","managementListenAddress":"127.0.0.1:$pm",
"certificate":"$T/pebble/tls.crt","privateKey":"$T/pebble/tls.key","httpPort":$ACME_HTTP_PORT,
"tlsPort":$ACME_TLS_PORT,"ocspResponderURL":"","domainBlocklist":["blocked.example.com"],
"externalAccountBindingRequired":${PEBBLE_EAB:-false},$validity
"externalAccountMACKeys":{"kid-1":"zWNDZM6eQGHWpSRTPal5eIUYFTu7EajVIoguysqZ9wG44nMEtx3MUAsUDkMTQ12W"}}}
JSON
	pebble-challtestsrv -management "127.0.0.1:$mgmt" -dns01 "127.0.0.1:$dns" -http01 "" \
		-https01 "" -tlsalpn01 "" -defaultIPv6 "" >"$T/challtestsrv.log" 2>&1 &
	PIDS+=("$!")
	PEBBLE_VA_NOSLEEP=1 pebble -config "$T/pebble/config.json" -dnsserver "127.0.0.1:$dns" \
		>"$T/pebble.log" 2>&1 &
	PIDS+=("$!")
	wait_port "$pp" 20 && wait_port "$pm" 20 && wait_port "$mgmt" 20 || fail "pebble did not start"
	ACME_DIR="https://127.0.0.1:$pp/dir"
	ACME_CA="$T/pebble/ca/ca.crt"
	ACME_ROOT="$T/pebble/root.pem"
	curl -sSf --cacert "$ACME_CA" "https://127.0.0.1:$pm/roots/0" >"$ACME_ROOT" ||
		fail "cannot fetch pebble's root"
	cat >"$T/pebble/dns-hook" <<HOOK
#!/bin/sh
# tls.acme.dns_hook for the tests: sets and clears TXT records in challtestsrv
case "\$1" in
add) exec curl -sSf -d "{\"host\":\"\$2.\",\"value\":\"\$3\"}" http://127.0.0.1:$mgmt/set-txt ;;
remove) exec curl -sSf -d "{\"host\":\"\$2.\"}" http://127.0.0.1:$mgmt/clear-txt ;;
*) echo "dns-hook: add|remove NAME VALUE" >&2; exit 2 ;;
esac
HOOK
	chmod +x "$T/pebble/dns-hook"
}

# start_etcd_cluster: a 3-member etcd cluster (Debian's etcd-server) on
# loopback, clients over TLS with client-certificate auth, certificates from
# tlsgate's own CA in $T/eca (node.crt/key: a client certificate it trusts).
# Sets C[1..3] (client ports), EPS (host:port,...), HEPS (https URLs), S
# (the --set flags a tlsgate command needs: store.ca/cert/key/timeout),
# NODE_STORE (the same plus store.backend etcd and the endpoints), and
# start_member I starts member I again (PID_ETCD<I>). Waits for a quorum.
start_etcd_cluster() {
	command -v etcd >/dev/null || fail "etcd is not installed (make test installs etcd-server)"
	"$TG_BIN" ca init --dir "$T/eca" --name "etcd test CA" >/dev/null
	# members: server and client use in one certificate (etcd's gateway
	# dials its own gRPC port with it)
	openssl req -new -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout "$T/member.key" \
		-subj /CN=etcd-member -out "$T/member.csr" 2>/dev/null
	printf 'basicConstraints=critical,CA:FALSE\nkeyUsage=critical,digitalSignature\nextendedKeyUsage=serverAuth,clientAuth\nsubjectAltName=DNS:localhost,IP:127.0.0.1\n' >"$T/member.ext"
	openssl x509 -req -in "$T/member.csr" -CA "$T/eca/ca.crt" -CAkey "$T/eca/ca.key" \
		-CAcreateserial -days 2 -extfile "$T/member.ext" -out "$T/member.crt" 2>/dev/null ||
		fail "member certificate"
	"$TG_BIN" cert issue --client --name tlsgate-node --ca "$T/eca" --out "$T/node" >/dev/null
	C=(); ETCD_P=(); ETCD_CLUSTER=""
	local i
	for i in 1 2 3; do
		C[$i]=$(free_port); ETCD_P[$i]=$(free_port)
		ETCD_CLUSTER="$ETCD_CLUSTER${ETCD_CLUSTER:+,}m$i=http://127.0.0.1:${ETCD_P[$i]}"
	done
	for i in 1 2 3; do start_member $i; done
	EPS="127.0.0.1:${C[1]},127.0.0.1:${C[2]},127.0.0.1:${C[3]}"
	HEPS="https://127.0.0.1:${C[1]},https://127.0.0.1:${C[2]},https://127.0.0.1:${C[3]}"
	S=(--set store.ca="$T/eca/ca.crt" --set store.cert="$T/node.crt" --set store.key="$T/node.key"
	   --set store.timeout=2s)
	NODE_STORE=(--set store.backend=etcd --set "store.endpoints=$HEPS" "${S[@]}")
	local ok=0
	for _ in $(seq 100); do
		"$TG_BIN" store check --from "etcd://$EPS" "${S[@]}" >"$T/check.out" 2>"$T/check.err" &&
			{ ok=1; break; }
		sleep 0.2
	done
	[ "$ok" = 1 ] || fail "the etcd cluster did not come up: $(cat "$T/check.err")"
}
start_member() {   # I
	local i=$1
	etcd --name "m$i" --data-dir "$T/etcd$i" \
		--listen-client-urls "https://127.0.0.1:${C[$i]}" --advertise-client-urls "https://127.0.0.1:${C[$i]}" \
		--listen-peer-urls "http://127.0.0.1:${ETCD_P[$i]}" \
		--initial-advertise-peer-urls "http://127.0.0.1:${ETCD_P[$i]}" \
		--initial-cluster "$ETCD_CLUSTER" --initial-cluster-state new --initial-cluster-token tg-test \
		--cert-file "$T/member.crt" --key-file "$T/member.key" --client-cert-auth \
		--trusted-ca-file "$T/eca/ca.crt" >"$T/etcd$i.log" 2>&1 &
	PIDS+=("$!")
	printf -v "PID_ETCD$i" '%s' "$!"
}

# log_mark FILE PATTERN: how many lines match now; wait_new_log FILE PATTERN
# MARK SECONDS WHAT: waits until more match than MARK (the pattern may have
# matched earlier events).
log_mark() { grep -cE -- "$2" "$1" 2>/dev/null || true; }
wait_new_log() {
	local i
	for i in $(seq $(( $4 * 10 ))); do
		[ "$(log_mark "$1" "$2")" -gt "$3" ] && { pass "$5"; return 0; }
		sleep 0.1
	done
	fail "$5: no new line matching /$2/ in $1 within $4 s"
}

# Fault injection (tests/tools/faultshim.c): faults_for NAME writes
# $FAULTY_BIN, a wrapper that starts tlsgate with the shim preloaded (and
# the sanitizer's runtime first in an ASan build), and sets FAULT_DIR, the
# server NAME's state_dir, where the rules are armed (fault-arm) and each
# fault done is logged (fault.log): the sandbox lets the server read and
# write nothing else. Start it with TG_BIN=$FAULTY_BIN start_tlsgate NAME;
# then arm RULES, disarm, faults_met PATTERN WHAT.
faults_for() {
	local pre=${TG_FAULTSHIM:?TG_FAULTSHIM must name the fault shim} asan
	FAULT_DIR="$T/$1"
	FAULTY_BIN="$T/tlsgate-faulty-$1"
	mkdir -p "$FAULT_DIR"
	asan=$(ldd "$TG_BIN" 2>/dev/null | awk '/libasan|libtsan/ {print $3}')
	[ -n "$asan" ] && pre="$asan:$pre"
	cat >"$FAULTY_BIN" <<SH
#!/bin/sh
export LD_PRELOAD="$pre" TG_FAULT_ARM="$FAULT_DIR/fault-arm" TG_FAULT_LOG="$FAULT_DIR/fault.log"
export ASAN_OPTIONS="\${ASAN_OPTIONS:-}:verify_asan_link_order=0"
exec "$TG_BIN" "\$@"
SH
	chmod +x "$FAULTY_BIN"
}
# arm RULES: the shim picks them up within 20 ms (its counts start again)
arm() {
	printf '%s\n' "$1" >"$FAULT_DIR/fault-arm.new" && mv "$FAULT_DIR/fault-arm.new" "$FAULT_DIR/fault-arm"
	sleep 0.1
}
disarm() { rm -f "$FAULT_DIR/fault-arm"; sleep 0.1; }
# faults_met PATTERN WHAT: the shim did a fault matching PATTERN
faults_met() { grep -qE -- "$1" "$FAULT_DIR/fault.log" 2>/dev/null || fail "$2: the fault was never met"; }
