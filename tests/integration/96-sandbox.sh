#!/usr/bin/env bash
# After set-up the server gives up what it does not need: as root with
# `user` set it switches to that user (state_dir handed over, low port kept),
# and landlock limits file access to state_dir, files.root and the folders of
# its certificates.
. "$(dirname "$0")/harness.sh"
cd "$T"
echo hi >hi.txt

# landlock: uploads and downloads work; the process is confined
start_tlsgate l --set log.level=debug
CA="$T/l/ca/ca.crt"
curl -sS --cacert "$CA" -T hi.txt "https://localhost:$PORT_l/files/a/hi.txt" >/dev/null || fail "upload under landlock"
[ "$(curl -sS --cacert "$CA" "https://localhost:$PORT_l/files/a/hi.txt")" = hi ] || fail "download under landlock"
if grep -q "landlock: file access limited" "$T/l.log"; then
	grep -q "^NoNewPrivs:[[:space:]]*1" "/proc/$PID_l/status" || fail "landlock applied without no_new_privs"
	kill -HUP "$PID_l"
	assert_log "$T/l.log" "SIGHUP: configuration and certificates reloaded" "SIGHUP still reads its certificates under landlock"
	pass "landlock confines the server; files and reloads still work"
else
	assert_log "$T/l.log" "landlock: not offered by this kernel" "no landlock in this kernel, and it says so"
fi

if [ "$(id -u)" != 0 ]; then echo "not root: user switching skipped"; echo "96-sandbox: all passed"; exit 0; fi
chmod 755 "$T"   # so that nobody can reach its state_dir below $T
port=$((600 + RANDOM % 300))
"$TG_BIN" serve --state-dir "$T/u" --listen "127.0.0.1:$port" --set user=nobody --set group=nogroup \
	>"$T/u.log" 2>&1 &
PIDS+=("$!"); upid=$!
wait_port "$port" 10 || fail "serve with user=nobody on port $port"
assert_log "$T/u.log" "switched to user nobody" "the switch is logged"
grep -qE "^Uid:[[:space:]]+65534[[:space:]]+65534[[:space:]]+65534" "/proc/$upid/status" || fail "not running as nobody"
grep -qE "^Gid:[[:space:]]+65534" "/proc/$upid/status" || fail "not running as nogroup"
curl -sS --cacert "$T/u/ca/ca.crt" -T hi.txt "https://localhost:$port/files/hi.txt" >/dev/null || fail "upload as nobody"
[ "$(stat -c %U "$T/u/files/hi.txt")" = nobody ] || fail "the upload is not nobody's"
[ "$(stat -c %U "$T/u/ca/ca.key")" = nobody ] || fail "state_dir was not handed over"
expect_fail "unknown user" "user: no such user 'no-such-user-x'" \
	"$TG_BIN" serve --state-dir "$T/v" --listen 127.0.0.1:0 --set user=no-such-user-x --set admin.listen=off
pass "bound port $port as root, then runs as nobody:nogroup with state_dir handed over"
echo "96-sandbox: all passed"
