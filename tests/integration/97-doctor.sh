#!/usr/bin/env bash
# tlsgate doctor finds each problem of a broken configuration, one line
# each, and says how to fix it; a sound configuration passes.
. "$(dirname "$0")/harness.sh"
cd "$T"
chmod 755 "$T"
export TLSGATE_STATE_DIR="$T/st" TLSGATE_ADMIN_LISTEN=off
"$TG_BIN" ca init >/dev/null                              # the local CA, in state_dir/ca
"$TG_BIN" cert issue --server --san dns:localhost,dns:api.lan --out good >/dev/null
"$TG_BIN" cert issue --server --san dns:localhost --out other >/dev/null
"$TG_BIN" ca init --dir foreign >/dev/null
"$TG_BIN" cert issue --server --san dns:localhost --ca foreign --out alien >/dev/null

out=$("$TG_BIN" doctor --cert good.crt --key good.key --set tls.names=localhost,api.lan) \
	|| fail "a sound configuration has problems: $out"
grep -q "no problems found" <<<"$out" || fail "no verdict line: $out"
pass "a sound configuration: no problems"

doctor_finds() {   # WHAT PATTERN ARGS...: exactly one problem line, matching
	local what=$1 pat=$2 out rc=0; shift 2
	out=$("$TG_BIN" doctor "$@") || rc=$?
	[ "$rc" = 1 ] || fail "$what: exit $rc, want 1: $out"
	[ "$(grep -c '^problem: ' <<<"$out")" = 1 ] || fail "$what: want one problem line: $out"
	grep '^problem: ' <<<"$out" | grep -qE -- "$pat" || fail "$what: /$pat/ not in: $out"
	pass "$what -> $(grep '^problem: ' <<<"$out")"
}
doctor_finds "key not matching" "tls.key .*other.key does not match tls.cert .*good.crt" --cert good.crt --key other.key
cat st/ca/ca.crt <(sed -n '/BEGIN/,/END/p;/END/q' good.crt) >swapped.crt
doctor_finds "chain out of order" "out of order: the key.s certificate is number 2 in the file" --cert swapped.crt --key good.key
sed -n '1,/END CERTIFICATE/p' alien.crt >alien-leaf.crt
doctor_finds "chain incomplete" "chain incomplete: the issuer .*tlsgate local CA.* is neither in the file nor a trusted root" \
	--cert alien-leaf.crt --key alien.key
doctor_finds "name missing" "tls.names has www.lan, but the certificate names only dns:localhost, dns:api.lan" \
	--cert good.crt --key good.key --set tls.names=localhost,www.lan
make_expired_cert st/ca old
chmod 600 old.key
doctor_finds "expired" "certificate for localhost expired on 2021-01-01" --cert old.crt --key old.key
cp good.key open.key && chmod 644 open.key
doctor_finds "key permissions" "tls.key .*open.key: mode 644 lets other users read the private key; fix: chmod 600" \
	--cert good.crt --key open.key
doctor_finds "mutual without a client CA" "tls.clients.ca is empty and tls.mode is mutual" \
	--mode mutual --set tls.auto=self-signed
doctor_finds "insecure mode" "client.trust is insecure-no-validation .*fix: whitelist" \
	--set client.trust=insecure-no-validation
doctor_finds "ACME directory unreachable" "tls.acme.directory .*cannot reach the ACME server at https://127.0.0.1:1/dir" \
	--set tls.auto=acme --set tls.acme.names=api.example.com --set tls.acme.challenge=tls-alpn-01 \
	--set tls.acme.directory=https://127.0.0.1:1/dir
doctor_finds "plain HTTP" "tls.mode is off" --mode off
doctor_finds "a client certificate without clientAuth" \
	"client.cert .*good.crt .* has no clientAuth in its extendedKeyUsage" \
	--set client.cert="$T/good.crt" --set client.key="$T/good.key"
# an intermediate as a trust anchor: retired (ended), or still current
mkdir -p ica/newcerts && : >ica/index.txt && echo 01 >ica/serial
cat >ica.cnf <<CNF
[ca]
default_ca = x
[x]
dir = ica
database = ica/index.txt
new_certs_dir = ica/newcerts
serial = ica/serial
default_md = sha256
policy = p
[p]
commonName = supplied
[v3ica]
basicConstraints = critical,CA:TRUE
keyUsage = critical,keyCertSign,cRLSign
CNF
for n in old new; do
	openssl req -new -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout ica-$n.key \
		-subj "/CN=Intermediate $n" -out ica-$n.csr 2>/dev/null
done
openssl ca -batch -config ica.cnf -cert st/ca/ca.crt -keyfile st/ca/ca.key -in ica-old.csr -out ica-old.crt \
	-startdate 20240101000000Z -enddate 20250101000000Z -extensions v3ica -notext 2>/dev/null
openssl ca -batch -config ica.cnf -cert st/ca/ca.crt -keyfile st/ca/ca.key -in ica-new.csr -out ica-new.crt \
	-days 365 -extensions v3ica -notext 2>/dev/null
doctor_finds "a retired intermediate as the clients' CA" \
	"tls.clients.ca .*ica-old.crt .* trusts the intermediate .*CN=Intermediate old, retired \(it ended on 2025-01-01\).*fix: trust the root" \
	--cert good.crt --key good.key --set tls.names=localhost,api.lan --mode mutual --set tls.clients.ca="$T/ica-old.crt"
out=$("$TG_BIN" doctor --cert good.crt --key good.key --set tls.names=localhost,api.lan \
	--set tunnels.0.listen=127.0.0.1:1 --set tunnels.0.connect=127.0.0.1:2 --set tunnels.0.tls_connect=true \
	--set tunnels.0.ca="$T/ica-new.crt") || fail "a current intermediate is a problem: $out"
grep -q "^ok: tunnels.0.ca .*trusts the intermediate .*CN=Intermediate new .*trust the root instead" <<<"$out" ||
	fail "a current intermediate is not said: $out"
pass "a current intermediate as a tunnel's CA is said, not a problem"
if command -v setpriv >/dev/null; then
	# the build folder may not be reachable for nobody: run a copy from $T
	cp "$TG_BIN" "$T/tlsgate-copy" && chmod 755 "$T/tlsgate-copy"
	out=$(setpriv --reuid=65534 --regid=65534 --clear-groups env HOME=/tmp "$T/tlsgate-copy" doctor --listen :443 \
		--set tls.auto=self-signed --state-dir "$T/nobody") || true
	grep -q "^problem: listen :443: ports below 1024 need root or CAP_NET_BIND_SERVICE; fix: sudo setcap cap_net_bind_service=+ep" \
		<<<"$out" || fail "privileged port not found: $out"
	pass "a privileged port without the capability, with the setcap line"
fi
echo "97-doctor: all passed"
