#!/usr/bin/env bash
# tlsgate ca install puts the local CA into the system trust store so that
# clients trust tlsgate without --cacert; uninstall takes it out again.
# As root this changes the machine's trust store for a moment (and always
# undoes it); without root it must print the exact command instead.
. "$(dirname "$0")/harness.sh"
cd "$T"
export TLSGATE_STATE_DIR="$T/st" TLSGATE_ADMIN_LISTEN=off
"$TG_BIN" ca init --name "tlsgate test CA $$" >/dev/null
if [ "$(id -u)" != 0 ]; then
	expect_fail "install without root" "needs root; run: sudo cp .*ca.crt /usr/local/share/ca-certificates/tlsgate-[0-9a-f]{16}.crt && sudo /usr/sbin/update-ca-certificates" \
		"$TG_BIN" ca install
	echo "95-ca-install: all passed (non-root part)"; exit 0
fi
command -v update-ca-certificates >/dev/null || fail "update-ca-certificates missing (package ca-certificates)"
trap '"$TG_BIN" ca uninstall >/dev/null 2>&1 || true; cleanup' EXIT
start_tlsgate s --state-dir "$T/st"
curl -sS "https://localhost:$PORT_s/files/" >/dev/null 2>&1 && fail "trusted before install"
"$TG_BIN" ca install >install.out || fail "ca install: $(cat install.out)"
grep -q "added .*ca.crt to the system trust store" install.out || fail "install message: $(cat install.out)"
curl -sS "https://localhost:$PORT_s/files/" >/dev/null || fail "curl does not trust the installed CA"
"$TG_BIN" get "https://localhost:$PORT_s/files/" --set client.ca= --state-dir "$T/elsewhere" >/dev/null \
	|| fail "tlsgate get (system roots only) does not trust the installed CA"
"$TG_BIN" ca uninstall >/dev/null || fail "ca uninstall"
curl -sS "https://localhost:$PORT_s/files/" >/dev/null 2>&1 && fail "still trusted after uninstall"
expect_fail "uninstall twice" "was this CA installed" "$TG_BIN" ca uninstall
pass "ca install makes curl trust the local CA; uninstall undoes it"
echo "95-ca-install: all passed"
